//! UDP chat cannot be used as a reflector: until a sender address proves it
//! receives our datagrams (it echoes a cookie), the gateway sends it at most
//! three times the bytes it received; and under pressure, silent sessions give
//! their slots to new senders.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_harness;

use std::time::Duration;

use gateway_harness::{DEADLINE, LineClient, UdpUser, start};
use quartet_gateway::{GatewayOptions, Protocol};

/// A room whose history answers a join with 60 KB.
async fn heavy_room(gateway: &quartet_gateway::RunningGateway, room: &str) {
    let mut writer = LineClient::connect_to(gateway, Protocol::ChatTcp).await;
    writer.ask("NICK writer").await;
    writer.ask(&format!("JOIN {room}")).await;
    // Within the chat service's burst (20 lines) and line size (4 KiB).
    for i in 0..15 {
        writer.send(&format!("{i} {}", "x".repeat(4000))).await;
    }
    // The writer sees nothing of its own lines; a reader confirms they are in.
    let mut reader = LineClient::connect_to(gateway, Protocol::ChatTcp).await;
    reader.ask("NICK reader").await;
    reader.send(&format!("JOIN {room}")).await;
    while !reader.line().await.starts_with("writer 14 ") {}
}

#[tokio::test]
async fn a_spoofed_join_gets_no_more_than_three_times_its_size() {
    let options = GatewayOptions {
        max_line_bytes: 8192,
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    heavy_room(&gateway, "amproom").await;

    let mut victim = UdpUser::new(&gateway).await;
    let attack = "NICK amp1\nJOIN amproom";
    victim.send(attack).await;
    let challenge = victim.challenge().await;
    assert!(
        challenge.len() <= 3 * attack.len(),
        "{} bytes for {}",
        challenge.len(),
        attack.len()
    );

    // Nothing else was sent before validation: the next datagram after the
    // echo is the acknowledgement (loopback keeps one sender's order).
    let cookie = challenge.trim_start_matches("COOKIE ");
    victim.send(&format!("COOKIE {cookie}")).await;
    assert_eq!(victim.recv().await, "OK cookie");
    // Validated, the kept first datagram runs and the history flows.
    assert_eq!(victim.recv().await, "OK nick amp1");
    assert!(victim.recv().await.starts_with("OK joined amproom as amp1"));
    assert!(victim.recv().await.starts_with("writer 0 xxxx"));
    gateway.stop().await;
}

#[tokio::test]
async fn a_datagram_too_small_to_carry_the_cookie_gets_no_answer() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = UdpUser::new(&gateway).await;
    // 4 bytes allow 12: less than `COOKIE xxxxxxxx` (15), so no answer at all.
    user.send("HELP").await;
    user.send("NICK uma\n").await;
    let challenge = user.challenge().await;
    user.send(&format!("COOKIE {}", &challenge[7..])).await;
    // Had HELP been answered, a second challenge would come first.
    assert_eq!(user.recv().await, "OK cookie");
    assert_eq!(user.recv().await, "OK nick uma");
    gateway.stop().await;
}

#[tokio::test]
async fn a_wrong_cookie_is_challenged_again_and_lines_after_a_good_one_are_read() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = UdpUser::new(&gateway).await;
    user.send("COOKIE 00000000").await;
    let challenge = user.challenge().await;
    assert_ne!(challenge, "COOKIE 00000000");
    // The echo may carry the first lines itself.
    user.send(&format!("{challenge}\nNICK ida\nJOIN sala"))
        .await;
    assert_eq!(user.recv().await, "OK cookie");
    assert_eq!(user.recv().await, "OK nick ida");
    assert_eq!(user.recv().await, "OK joined sala as ida; here: ida");
    gateway.stop().await;
}

#[tokio::test]
async fn under_pressure_a_silent_session_gives_its_slot_to_a_new_sender() {
    let options = GatewayOptions {
        max_udp_sessions: 1,
        udp_reclaim_after: Duration::from_millis(300),
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    let mut first = UdpUser::new(&gateway).await;
    first.start("NICK one\n").await;
    assert_eq!(first.recv().await, "OK nick one");

    // The only slot is taken by a session heard from just now.
    let mut second = UdpUser::new(&gateway).await;
    second.send("NICK two\n").await;
    let challenge = second.recv().await;
    second.send(&challenge).await;
    assert_eq!(
        second.recv().await,
        "ERR RESOURCE_EXHAUSTED too many UDP chat sessions; try again later"
    );

    // Once the first has been silent long enough, the second gets its slot.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        second.send(&challenge).await;
        if second.recv().await == "OK cookie" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reclaimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first's session is over: it is a stranger again.
    first.send("HELP\n").await;
    first.challenge().await;
    gateway.stop().await;
}

//! The gateway under abuse: long lines, bad bytes, idle and slow clients, too
//! many clients, and a service that is down and comes back.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_harness;

use std::time::{Duration, Instant};

use gateway_harness::{DEADLINE, LineClient, gateway, start};
use quartet_gateway::{GatewayOptions, Protocol, UpstreamOptions};
use quartet_runtime::{ServerOptions, Shutdown};
use quartet_transform::TransformHandler;
use tokio::{io::AsyncWriteExt as _, net::TcpStream, time::timeout};

#[tokio::test]
async fn a_line_over_the_limit_is_refused_and_the_connection_closed() {
    let options = GatewayOptions {
        max_line_bytes: 1024,
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;
    assert_eq!(
        user.ask(&format!("UPPER {}", "a".repeat(1000))).await,
        "A".repeat(1000)
    );

    // Far over the limit, and no newline ever: the gateway must not wait for one.
    user.send_bytes(&vec![b'x'; 1_000_000]).await;
    assert_eq!(user.line().await, "ERR line too long");
    assert_eq!(user.recv().await, None);

    // Others are unaffected.
    let mut other = LineClient::connect_to(&gateway, Protocol::Transform).await;
    assert_eq!(other.ask("UPPER ok").await, "OK");
    gateway.stop().await;
}

#[tokio::test]
async fn a_line_that_is_not_utf8_gets_err_and_the_connection_goes_on() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    for protocol in [
        Protocol::Transform,
        Protocol::Database,
        Protocol::Weather,
        Protocol::ChatTcp,
    ] {
        let mut user = LineClient::connect_to(&gateway, protocol).await;
        user.send_bytes(b"UPPER \xff\xfe\n").await;
        assert_eq!(
            user.line().await,
            "ERR INVALID_ARGUMENT line is not valid UTF-8",
            "{protocol:?}"
        );
        assert_eq!(user.ask("QUIT").await, "OK bye", "{protocol:?}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let options = GatewayOptions {
        idle_timeout: Duration::from_millis(300),
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    for protocol in [Protocol::Transform, Protocol::ChatTcp] {
        let mut user = LineClient::connect_to(&gateway, protocol).await;
        let started = Instant::now();
        assert_eq!(
            user.line().await,
            "ERR DEADLINE_EXCEEDED idle timeout",
            "{protocol:?}"
        );
        assert_eq!(user.recv().await, None);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    gateway.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_a_reason() {
    let options = GatewayOptions {
        max_connections: 2,
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    let mut first = LineClient::connect_to(&gateway, Protocol::Transform).await;
    let mut second = LineClient::connect_to(&gateway, Protocol::Database).await;
    assert_eq!(first.ask("UPPER a").await, "A");
    assert!(second.ask("GET x").await.starts_with("ERR NOT_FOUND"));

    let mut third = LineClient::connect_to(&gateway, Protocol::Weather).await;
    assert_eq!(
        third.line().await,
        "ERR UNAVAILABLE too many connections; try again later"
    );
    assert_eq!(third.recv().await, None);

    assert_eq!(first.ask("QUIT").await, "OK bye");
    assert_eq!(first.recv().await, None);
    // The freed place is taken by the next client.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut fourth = LineClient::connect_to(&gateway, Protocol::Transform).await;
        fourth.send("UPPER again").await;
        if fourth.recv().await.as_deref() == Some("AGAIN") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the connection slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_service_that_is_down_gives_unavailable_promptly_and_is_used_again_when_back() {
    // A port nobody listens on, for a transform service that comes later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstreams = UpstreamOptions {
        transform_addr: format!("http://127.0.0.1:{port}"),
        ..UpstreamOptions::default()
    };
    let options = GatewayOptions {
        upstream_timeout: Duration::from_secs(2),
        ..GatewayOptions::ephemeral()
    };
    let gateway = gateway(options, &upstreams).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;

    let started = Instant::now();
    let answer = user.ask("UPPER anyone").await;
    assert!(answer.starts_with("ERR UNAVAILABLE "), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    let handler = TransformHandler::default();
    let transform = quartet_transform::server(ServerOptions::default(), Shutdown::new(), handler)
        .spawn_on(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if user.ask("UPPER back").await == "BACK" {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    transform.stop().await.unwrap();
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_rather_than_buffered() {
    let options = GatewayOptions {
        idle_timeout: Duration::from_millis(500),
        ..GatewayOptions::ephemeral()
    };
    let (_services, gateway) = start(options).await;
    let mut stream = TcpStream::connect(gateway.address(Protocol::Transform).unwrap())
        .await
        .unwrap();
    let request = format!("UPPER {}\n", "a".repeat(4000));
    // Writes until the gateway stops reading and then drops us; answers pile up
    // in the socket buffers, never in the gateway.
    let outcome = timeout(DEADLINE, async {
        loop {
            if stream.write_all(request.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "the gateway kept reading from a client that never reads"
    );
    // Still serving everyone else.
    let mut other = LineClient::connect_to(&gateway, Protocol::Transform).await;
    assert_eq!(other.ask("UPPER fine").await, "FINE");
    gateway.stop().await;
}

#[tokio::test]
async fn two_thousand_concurrent_connections_are_each_answered() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let addr = gateway.address(Protocol::Transform).unwrap();
    let mut users = Vec::new();
    for _ in 0..2000 {
        users.push(LineClient::connect(addr).await);
    }
    let mut answers = tokio::task::JoinSet::new();
    for (i, mut user) in users.into_iter().enumerate() {
        answers.spawn(async move { (i, user.ask(&format!("UPPER user-{i}")).await) });
    }
    let answers = timeout(DEADLINE, answers.join_all())
        .await
        .expect("answers never came");
    assert_eq!(answers.len(), 2000);
    for (i, answer) in answers {
        assert_eq!(answer, format!("USER-{i}"));
    }
    gateway.stop().await;
}

#[tokio::test]
async fn an_unknown_verb_is_quoted_only_in_part() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    for protocol in [Protocol::Transform, Protocol::Database, Protocol::Weather] {
        let mut user = LineClient::connect_to(&gateway, protocol).await;
        let answer = user.ask(&"V".repeat(60_000)).await;
        assert!(
            answer.starts_with("ERR INVALID_ARGUMENT unknown command \"VVV"),
            "{protocol:?}: {answer:.80}"
        );
        assert!(answer.len() < 200, "{protocol:?}: {} bytes", answer.len());
    }
    gateway.stop().await;
}

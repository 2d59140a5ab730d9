//! The WebSockets: chat with telnet users in one room, resuming, weather
//! readings, the frame limits and their close codes, the origin check, the
//! connection limit, pings.

use std::time::Duration;

use quartet_gateway::GatewayOptions;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    time::timeout,
};
use tokio_tungstenite::tungstenite::{self, Message};

use super::harness::{
    DEADLINE, Ended, LineUser, Quartet, WebUser, client_frame, last_close, raw_upgrade,
    server_frames,
};

/// A browser user in `room`, numbered.
async fn web_user(quartet: &Quartet, nick: &str, join: &str) -> WebUser {
    let mut user = WebUser::connect(&quartet.ws_url("/ws/chat")).await;
    assert_eq!(
        user.ask(&format!("NICK {nick}")).await,
        format!("OK nick {nick}")
    );
    let joined = user.ask(join).await;
    assert!(joined.starts_with("OK joined "), "{joined}");
    user
}

#[tokio::test]
async fn a_browser_and_a_telnet_user_chat_in_one_room() {
    let quartet = Quartet::start().await;
    let mut web = web_user(&quartet, "wendy", "JOIN lobby SEQ").await;
    let (mut tel, joined) = quartet.telnet_user("tom", "JOIN lobby").await;
    assert_eq!(joined, "OK joined lobby as tom; here: tom, wendy");
    assert_eq!(web.line().await, "* tom joined");

    web.send("hola desde el navegador").await;
    assert_eq!(web.line().await, "#1 wendy hola desde el navegador");
    assert_eq!(tel.line().await, "wendy hola desde el navegador");
    tel.send("hello from telnet").await;
    assert_eq!(web.line().await, "#2 tom hello from telnet");

    assert_eq!(web.ask("bye").await, "OK bye");
    assert_eq!(web.ended().await, Ended::Closed(1000, "bye".into()));
    assert_eq!(tel.line().await, "* wendy left");
}

#[tokio::test]
async fn a_browser_that_reconnects_since_its_last_number_misses_nothing() {
    let quartet = Quartet::start().await;
    let mut web = web_user(&quartet, "wendy", "JOIN porch SEQ").await;
    let mut tel = LineUser::connect(quartet.chat_tcp()).await;
    tel.ask("NICK tom").await;
    tel.ask("JOIN porch").await;
    assert_eq!(web.line().await, "* tom joined");
    tel.send("one").await;
    assert_eq!(web.line().await, "#1 tom one");

    drop(web);
    assert_eq!(tel.line().await, "* wendy left");
    tel.send("two").await;
    tel.send("three").await;
    let mut web = web_user(&quartet, "wendy", "JOIN porch SINCE 1").await;
    assert_eq!(web.lines(2).await, ["#2 tom two", "#3 tom three"]);
    web.send("back").await;
    assert_eq!(
        web.line().await,
        "#4 wendy back",
        "exactly the missed lines, then live"
    );
}

/// The readings `ALL` answers: `min=.. max=.. pressure=.. rainfall=..`.
fn is_all_line(line: &str) -> bool {
    let keys: Vec<&str> = line
        .split(' ')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (value == "-" || value.parse::<f64>().is_ok()).then_some(key)
        })
        .collect();
    keys == ["min", "max", "pressure", "rainfall"]
}

#[tokio::test]
async fn the_weather_socket_sends_readings_as_all_lines() {
    let quartet = Quartet::start().await;
    let url = quartet.ws_url("/ws/weather?station=nairobi&every=100ms");
    let mut watch = WebUser::connect(&url).await;
    for _ in 0..3 {
        let line = watch.line().await;
        assert!(is_all_line(&line), "{line:?}");
    }
}

#[tokio::test]
async fn a_bad_weather_query_gets_one_err_line_then_a_normal_close() {
    let quartet = Quartet::start().await;
    let mut unknown = WebUser::connect(&quartet.ws_url("/ws/weather?station=atlantis")).await;
    let line = unknown.line().await;
    assert!(line.starts_with("ERR NOT_FOUND "), "{line}");
    assert_eq!(unknown.ended().await, Ended::Closed(1000, "bye".into()));

    let mut bad = WebUser::connect(&quartet.ws_url("/ws/weather?every=often")).await;
    let line = bad.line().await;
    assert!(line.starts_with("ERR INVALID_ARGUMENT every: "), "{line}");
}

fn small_lines() -> GatewayOptions {
    GatewayOptions {
        max_line_bytes: 64,
        ..GatewayOptions::ephemeral()
    }
}

#[tokio::test]
async fn a_frame_over_the_line_limit_is_answered_then_closed_with_1009() {
    let quartet = Quartet::with(small_lines()).await;
    let mut user = WebUser::connect(&quartet.ws_url("/ws/chat")).await;
    user.send(&"x".repeat(65)).await;
    assert_eq!(user.line().await, "ERR line too long");
    assert_eq!(
        user.ended().await,
        Ended::Closed(1009, "line too long".into())
    );

    // Far over: refused from the frame's header, never buffered.
    let mut user = WebUser::connect(&quartet.ws_url("/ws/chat")).await;
    user.send(&"x".repeat(4096)).await;
    assert_eq!(
        user.ended().await,
        Ended::Closed(1009, "line too long".into())
    );
}

#[tokio::test]
async fn binary_and_multi_line_frames_are_refused_with_their_close_codes() {
    let quartet = Quartet::start().await;
    let mut user = WebUser::connect(&quartet.ws_url("/ws/chat")).await;
    user.send_message(Message::binary(vec![1, 2, 3])).await;
    match user.ended().await {
        Ended::Closed(1003, reason) => assert!(reason.contains("binary"), "{reason}"),
        other => panic!("expected 1003, got {other:?}"),
    }
    let mut user = WebUser::connect(&quartet.ws_url("/ws/chat")).await;
    assert_eq!(user.ask("NICK ana").await, "OK nick ana");
    user.send("NICK bo\nJOIN lobby").await;
    match user.ended().await {
        Ended::Closed(1007, reason) => assert!(reason.contains("one line"), "{reason}"),
        other => panic!("expected 1007, got {other:?}"),
    }
    let mut watch = WebUser::connect(&quartet.ws_url("/ws/weather?every=1h")).await;
    watch.send_message(Message::binary(vec![0])).await;
    assert!(matches!(
        watch.ended().await,
        Ended::Closed(1003, _) | Ended::Dropped
    ));
}

/// The HTTP status a refused handshake got.
fn refused_with(result: Result<WebUser, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the socket opened"),
    }
}

#[tokio::test]
async fn a_cross_origin_upgrade_is_refused_unless_its_origin_is_allowed() {
    let quartet = Quartet::with(GatewayOptions {
        web_allowed_origins: vec!["https://chat.example.com".into()],
        ..GatewayOptions::ephemeral()
    })
    .await;
    let url = quartet.ws_url("/ws/chat");
    let evil = WebUser::try_connect(&url, Some("https://evil.example")).await;
    assert_eq!(refused_with(evil), 403);
    let weather = quartet.ws_url("/ws/weather");
    let evil = WebUser::try_connect(&weather, Some("https://evil.example")).await;
    assert_eq!(refused_with(evil), 403);

    let own = format!("http://{}", quartet.web());
    let mut same = WebUser::try_connect(&url, Some(&own)).await.unwrap();
    assert_eq!(same.ask("NICK ana").await, "OK nick ana");
    let mut allowed = WebUser::try_connect(&url, Some("https://chat.example.com"))
        .await
        .unwrap();
    assert_eq!(allowed.ask("NICK bo").await, "OK nick bo");
}

#[tokio::test]
async fn websockets_count_against_the_gateways_connection_limit() {
    let quartet = Quartet::with(GatewayOptions {
        max_connections: 1,
        ..GatewayOptions::ephemeral()
    })
    .await;
    let url = quartet.ws_url("/ws/chat");
    let mut first = WebUser::connect(&url).await;
    assert_eq!(first.ask("NICK ana").await, "OK nick ana");

    let mut telnet = LineUser::connect(quartet.chat_tcp()).await;
    assert_eq!(
        telnet.line().await,
        "ERR UNAVAILABLE too many connections; try again later"
    );
    assert_eq!(refused_with(WebUser::try_connect(&url, None).await), 503);

    assert_eq!(first.ask("QUIT").await, "OK bye");
    first.ended().await;
    // The permit comes back once the socket's task has ended.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut again = loop {
        match WebUser::try_connect(&url, None).await {
            Ok(user) => break user,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(error) => panic!("the permit never came back: {error}"),
        }
    };
    assert_eq!(again.ask("NICK bo").await, "OK nick bo");
}

#[tokio::test]
async fn every_web_connection_counts_and_a_silent_one_is_closed_when_idle() {
    let quartet = Quartet::with(GatewayOptions {
        max_connections: 1,
        idle_timeout: Duration::from_millis(300),
        ..GatewayOptions::ephemeral()
    })
    .await;
    // A connection that never sends a request holds the only permit...
    let mut silent = tokio::net::TcpStream::connect(quartet.web()).await.unwrap();
    let mut telnet = LineUser::connect(quartet.chat_tcp()).await;
    assert_eq!(
        telnet.line().await,
        "ERR UNAVAILABLE too many connections; try again later"
    );
    // ...until the idle timeout closes it.
    let mut rest = Vec::new();
    timeout(DEADLINE, silent.read_to_end(&mut rest))
        .await
        .expect("the silent connection was never closed")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let quartet = Quartet::with(GatewayOptions {
        web_ping_interval: Duration::from_millis(100),
        ..GatewayOptions::ephemeral()
    })
    .await;
    let mut silent = raw_upgrade(quartet.web(), "/ws/chat").await;
    let frames = server_frames(&mut silent).await;
    assert!(
        frames.iter().any(|(opcode, _)| *opcode == 0x9),
        "a ping was sent"
    );
    assert_eq!(last_close(&frames), (1001, "no answer to ping".into()));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() {
    let quartet = Quartet::start().await;
    let mut socket = raw_upgrade(quartet.web(), "/ws/chat").await;
    socket
        .write_all(&client_frame(0x1, b"NICK \xff\xfe"))
        .await
        .unwrap();
    let frames = server_frames(&mut socket).await;
    assert_eq!(
        last_close(&frames),
        (1007, "a text frame must be valid UTF-8".into())
    );
}

#[tokio::test]
async fn a_draining_gateway_tells_browser_users_and_closes_their_sockets() {
    let quartet = Quartet::start().await;
    let mut web = web_user(&quartet, "wendy", "JOIN hall SEQ").await;
    let mut watch = WebUser::connect(&quartet.ws_url("/ws/weather?every=1h")).await;
    assert!(is_all_line(&watch.line().await));
    let stopping = tokio::spawn(quartet.gateway.stop());
    assert_eq!(web.line().await, "* gateway shutting down");
    assert_eq!(web.ended().await, Ended::Closed(1000, "bye".into()));
    assert_eq!(watch.line().await, "* gateway shutting down");
    assert_eq!(watch.ended().await, Ended::Closed(1000, "bye".into()));
    timeout(DEADLINE, stopping).await.unwrap().unwrap();
}

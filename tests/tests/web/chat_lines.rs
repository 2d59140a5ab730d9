//! `JOIN <room> SEQ` and `JOIN <room> SINCE <n>` over raw TCP, as `nc` users
//! (and the page, over its socket) use them.

use super::harness::{LineUser, Quartet};

/// NICK and JOIN on a new connection; returns the user and its `OK joined` line.
async fn join(quartet: &Quartet, nick: &str, join: &str) -> (LineUser, String) {
    let mut user = LineUser::connect(quartet.chat_tcp()).await;
    assert_eq!(
        user.ask(&format!("NICK {nick}")).await,
        format!("OK nick {nick}")
    );
    let joined = user.ask(join).await;
    assert!(joined.starts_with("OK joined "), "{joined}");
    (user, joined)
}

#[tokio::test]
async fn a_numbered_join_numbers_every_line_and_echoes_our_own() {
    let quartet = Quartet::start().await;
    let (mut ana, _) = join(&quartet, "ana", "JOIN plaza SEQ").await;
    let (mut bo, _) = join(&quartet, "bo", "JOIN plaza").await;
    assert_eq!(ana.line().await, "* bo joined");

    ana.send("hola a todos").await;
    assert_eq!(ana.line().await, "#1 ana hola a todos");
    assert_eq!(
        bo.line().await,
        "ana hola a todos",
        "plain users see what they always saw"
    );
    bo.send("hi").await;
    assert_eq!(ana.line().await, "#2 bo hi");
    bo.send("bye").await;
    assert_eq!(bo.line().await, "OK bye");
    assert_eq!(ana.line().await, "* bo left");
}

#[tokio::test]
async fn joining_since_a_number_gets_exactly_the_lines_after_it() {
    let quartet = Quartet::start().await;
    let (mut ana, _) = join(&quartet, "ana", "JOIN patio SEQ").await;
    let (mut bo, _) = join(&quartet, "bo", "JOIN patio").await;
    assert_eq!(ana.line().await, "* bo joined");
    for line in ["one", "two"] {
        bo.send(line).await;
    }
    assert_eq!(ana.line().await, "#1 bo one");
    assert_eq!(ana.line().await, "#2 bo two");

    drop(ana);
    assert_eq!(bo.line().await, "* ana left");
    for line in ["three", "four"] {
        bo.send(line).await;
    }
    let (mut ana, joined) = join(&quartet, "ana", "join patio since 2").await;
    assert_eq!(joined, "OK joined patio as ana; here: ana, bo");
    assert_eq!(ana.line().await, "#3 bo three");
    assert_eq!(ana.line().await, "#4 bo four");
    bo.send("five").await;
    assert_eq!(
        ana.line().await,
        "#5 bo five",
        "nothing else came in between"
    );
}

#[tokio::test]
async fn malformed_joins_get_a_usage_error_and_the_session_goes_on() {
    let quartet = Quartet::start().await;
    let mut user = LineUser::connect(quartet.chat_tcp()).await;
    assert_eq!(user.ask("NICK cy").await, "OK nick cy");
    assert_eq!(
        user.ask("JOIN plaza SINCE yesterday").await,
        "ERR INVALID_ARGUMENT SINCE takes a sequence number: JOIN <room> SINCE <n>"
    );
    assert_eq!(
        user.ask("JOIN plaza LATER").await,
        "ERR INVALID_ARGUMENT usage: JOIN <room> [SEQ | SINCE <n>] (a room has no spaces)"
    );
    assert!(
        user.ask("JOIN plaza SEQ")
            .await
            .starts_with("OK joined plaza as cy")
    );
}

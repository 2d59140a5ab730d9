//! `JOIN <room> SEQ` and `JOIN <room> SINCE <n>` over raw TCP, as `nc` users
//! (and the page, over its socket) use them.

use super::harness::{LineUser, Quartet};

/// Ana joins `room` with numbered lines, then Bo plainly; Ana has seen Bo
/// join.
async fn ana_numbered_and_bo_plain(room: &str) -> (Quartet, LineUser, LineUser) {
    let quartet = Quartet::start().await;
    let (mut ana, _) = quartet
        .telnet_user("ana", &format!("JOIN {room} SEQ"))
        .await;
    let (bo, _) = quartet.telnet_user("bo", &format!("JOIN {room}")).await;
    assert_eq!(ana.line().await, "* bo joined");
    (quartet, ana, bo)
}

#[tokio::test]
async fn a_numbered_join_numbers_every_line_and_echoes_our_own() {
    let (_quartet, mut ana, mut bo) = ana_numbered_and_bo_plain("plaza").await;

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
    let (quartet, mut ana, mut bo) = ana_numbered_and_bo_plain("patio").await;
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
    let (mut ana, joined) = quartet.telnet_user("ana", "join patio since 2").await;
    assert_eq!(joined, "OK joined patio as ana; here: ana, bo");
    assert_eq!(
        [ana.line().await, ana.line().await],
        ["#3 bo three", "#4 bo four"]
    );
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
    let refused = [
        (
            "JOIN plaza SINCE yesterday",
            "ERR INVALID_ARGUMENT SINCE takes a sequence number: JOIN <room> SINCE <n>",
        ),
        (
            "JOIN plaza LATER",
            "ERR INVALID_ARGUMENT usage: JOIN <room> [SEQ | SINCE <n>] (a room has no spaces)",
        ),
    ];
    for (join, refusal) in refused {
        assert_eq!(user.ask(join).await, refusal);
    }
    assert!(
        user.ask("JOIN plaza SEQ")
            .await
            .starts_with("OK joined plaza as cy")
    );
}

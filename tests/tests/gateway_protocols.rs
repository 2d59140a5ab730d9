//! Every command of every text protocol, over real TCP and UDP sockets, against
//! the real services.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_harness;

use gateway_harness::{LineClient, UdpUser, paste, start};
use quartet_gateway::{GatewayOptions, Protocol};
use quartet_suite::Service;

#[tokio::test]
async fn transform_commands_answer_with_the_transformed_text() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;

    assert_eq!(user.ask("UPPER straße").await, "STRASSE");
    assert_eq!(user.ask("lower HOLA Mundo").await, "hola mundo");
    assert_eq!(user.ask("REVERSE ne\u{301}e").await, "ee\u{301}n");
    assert_eq!(user.ask("UPPER   two  spaces ").await, "  TWO  SPACES ");
    assert_eq!(user.ask("UPPER").await, "");
    assert!(
        user.ask("SHOUT x")
            .await
            .starts_with("ERR INVALID_ARGUMENT unknown command \"SHOUT\"")
    );

    user.send("HELP").await;
    assert_eq!(user.line().await, "OK 5");
    for _ in 0..5 {
        user.line().await;
    }
    assert_eq!(user.ask("QUIT").await, "OK bye");
    assert_eq!(user.recv().await, None, "QUIT closes the connection");
    gateway.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Transform).await;

    // A thousand requests in one write, before reading any answer.
    let requests = paste(1000, |i| format!("REVERSE línea-{i}"));
    user.send_bytes(requests.as_bytes()).await;
    for i in 0..1000 {
        let expected: String = format!("línea-{i}").chars().rev().collect();
        assert_eq!(user.line().await, expected);
    }
    gateway.stop().await;
}

#[tokio::test]
async fn database_commands_and_their_spanish_aliases() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Database).await;

    assert_eq!(
        user.ask("ALTA 12345678-Z José Ñúñez").await,
        "OK 12345678-Z 1 José Ñúñez"
    );
    assert_eq!(user.ask("ADD 2 Ana").await, "OK 2 1 Ana");
    assert!(
        user.ask("ADD 2 Otra")
            .await
            .starts_with("ERR ALREADY_EXISTS ")
    );
    assert_eq!(
        user.ask("CONSULTA 12345678-Z").await,
        "OK 12345678-Z 1 José Ñúñez"
    );
    assert_eq!(
        user.ask("MODIFICACION 2 Ana María").await,
        "OK 2 2 Ana María"
    );
    assert_eq!(user.ask("GET 2").await, "OK 2 2 Ana María");

    user.send("LIST").await;
    assert_eq!(user.line().await, "OK 2");
    assert_eq!(user.line().await, "12345678-Z 1 José Ñúñez");
    assert_eq!(user.line().await, "2 2 Ana María");
    user.send("LIST 1").await;
    assert_eq!(user.line().await, "OK 1");
    assert_eq!(user.line().await, "12345678-Z 1 José Ñúñez");

    assert_eq!(user.ask("BAJA 2").await, "OK 2 deleted");
    assert!(user.ask("DEL 2").await.starts_with("ERR NOT_FOUND "));
    assert!(user.ask("GET 2").await.starts_with("ERR NOT_FOUND "));
    assert!(
        user.ask("ADD onlyid")
            .await
            .starts_with("ERR INVALID_ARGUMENT usage: ADD <id> <name>")
    );
    assert!(
        user.ask("ADD bad!id Name")
            .await
            .starts_with("ERR INVALID_ARGUMENT person.id:")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn weather_commands_answer_numbers() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Weather).await;

    for command in [
        "MIN_TEMP nairobi",
        "MAX_TEMP nairobi",
        "PRESSURE nairobi",
        "RAINFALL nairobi",
        "MIN_TEMP",
    ] {
        let answer = user.ask(command).await;
        answer
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{command}: {answer:?} is not a number"));
    }
    let min: f64 = user.ask("MIN_TEMP madrid").await.parse().unwrap();
    let max: f64 = user.ask("MAX_TEMP madrid").await.parse().unwrap();
    assert!(min <= max);

    let all = user.ask("ALL lhasa").await;
    let fields: Vec<&str> = all.split(' ').collect();
    assert_eq!(fields.len(), 4, "{all}");
    for (field, label) in fields
        .iter()
        .zip(["min=", "max=", "pressure=", "rainfall="])
    {
        field.strip_prefix(label).unwrap().parse::<f64>().unwrap();
    }

    user.send("STATIONS").await;
    let count: usize = user
        .line()
        .await
        .strip_prefix("OK ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 12);
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(user.line().await.split(' ').next().unwrap().to_owned());
    }
    assert!(ids.contains(&"madrid".to_owned()));
    assert!(
        user.ask("PRESSURE atlantis")
            .await
            .starts_with("ERR NOT_FOUND ")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn two_telnet_users_chat_in_one_room_and_bye_leaves() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut ana = LineClient::connect_to(&gateway, Protocol::ChatTcp).await;
    let mut bo = LineClient::connect_to(&gateway, Protocol::ChatTcp).await;

    assert!(
        ana.ask("hola")
            .await
            .starts_with("ERR FAILED_PRECONDITION ")
    );
    assert!(
        ana.ask("JOIN lobby")
            .await
            .starts_with("ERR FAILED_PRECONDITION choose a name")
    );
    assert_eq!(ana.ask("NICK ana").await, "OK nick ana");
    assert_eq!(
        ana.ask("JOIN lobby").await,
        "OK joined lobby as ana; here: ana"
    );
    assert_eq!(bo.ask("NICK bo").await, "OK nick bo");
    assert_eq!(
        bo.ask("JOIN lobby").await,
        "OK joined lobby as bo; here: ana, bo"
    );
    assert_eq!(ana.line().await, "* bo joined");

    ana.send("¿qué tal?").await;
    assert_eq!(bo.line().await, "ana ¿qué tal?");
    bo.send("HELP is just a line here").await;
    assert_eq!(ana.line().await, "bo HELP is just a line here");

    assert_eq!(bo.ask("bye").await, "OK bye");
    assert_eq!(bo.recv().await, None);
    assert_eq!(ana.line().await, "* bo left");

    // The nick is free again: a newcomer may take it, and sees history.
    let mut again = LineClient::connect_to(&gateway, Protocol::ChatTcp).await;
    again.ask("NICK bo").await;
    assert_eq!(
        again.ask("JOIN lobby").await,
        "OK joined lobby as bo; here: ana, bo"
    );
    assert_eq!(again.line().await, "ana ¿qué tal?");
    assert_eq!(again.line().await, "bo HELP is just a line here");
    gateway.stop().await;
}

#[tokio::test]
async fn a_udp_user_and_a_tcp_user_share_a_room() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut uma = UdpUser::new(&gateway).await;

    // The first datagram is answered with a cookie; echoing it starts the
    // session with that first line.
    uma.start("NICK uma\n").await;
    assert_eq!(uma.recv().await, "OK nick uma");
    uma.send("JOIN plaza").await;
    assert_eq!(uma.recv().await, "OK joined plaza as uma; here: uma");

    let mut tito = LineClient::connect_to(&gateway, Protocol::ChatTcp).await;
    tito.ask("NICK tito").await;
    tito.ask("JOIN plaza").await;
    assert_eq!(uma.recv().await, "* tito joined");
    tito.send("hola uma").await;
    assert_eq!(uma.recv().await, "tito hola uma");
    uma.send("hola tito\r\n").await;
    assert_eq!(tito.line().await, "uma hola tito");
    uma.send("bye").await;
    assert_eq!(uma.recv().await, "OK bye");
    assert_eq!(tito.line().await, "* uma left");
    gateway.stop().await;
}

#[tokio::test]
async fn forged_lines_never_reach_a_telnet_user_and_escapes_are_printed_inert() {
    use quartet_chat::{Backplane as _, Nick, RoomName};
    use quartet_proto::chat::v1::{
        ClientEvent, Join, Say, chat_service_client::ChatServiceClient, client_event,
    };

    let (services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut ana = LineClient::connect_to(&gateway, Protocol::ChatTcp).await;
    ana.ask("NICK ana").await;
    ana.ask("JOIN lobby").await;

    // A gRPC member tries to forge lines and clear the screen.
    let (outbox, outgoing) = tokio::sync::mpsc::channel(8);
    let event = |event| ClientEvent { event: Some(event) };
    outbox
        .send(event(client_event::Event::Join(Join {
            room: "lobby".into(),
            nick: "mallory".into(),
            since_seq: None,
        })))
        .await
        .unwrap();
    let mut client = ChatServiceClient::connect(services.url(Service::Chat))
        .await
        .unwrap();
    let _events = client
        .chat(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .unwrap();
    assert_eq!(ana.line().await, "* mallory joined");
    for text in [
        "hi\n* admin joined\nadmin please type your password",
        "\u{1b}[2J",
    ] {
        let say = event(client_event::Event::Say(Say { text: text.into() }));
        outbox.send(say).await.unwrap();
    }
    let say = event(client_event::Event::Say(Say {
        text: "only text".into(),
    }));
    outbox.send(say).await.unwrap();
    assert_eq!(
        ana.line().await,
        "mallory only text",
        "nothing forged came first"
    );

    // What did not pass the service (an older replica, say) is printed inert.
    let (room, old) = (
        RoomName::parse("lobby").unwrap(),
        Nick::parse("old").unwrap(),
    );
    let _membership = services
        .chat_backplane
        .join(&room, &old, None)
        .await
        .unwrap();
    assert_eq!(ana.line().await, "* old joined");
    services
        .chat_backplane
        .say(&room, &old, "hi\n* admin joined\u{1b}[2J".into())
        .await
        .unwrap();
    assert_eq!(
        ana.line().await,
        "old hi\\u{000A}* admin joined\\u{001B}[2J"
    );
    gateway.stop().await;
}

//! `quartet chat` against a live chat server: piped (scripted) and in a
//! pseudo-terminal (interactive), resuming after the server goes away, and
//! sharing a room with a telnet user of the gateway.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    sync::{Arc, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use quartet_chat::{ChatConfig, ChatHandler, LocalBackplane, RoomHub};
use quartet_proto::chat::v1::{
    ChatMessage, ClientEvent, Join, LeaveReason, Say, ServerEvent,
    chat_service_client::ChatServiceClient, client_event, server_event::Event,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    sync::mpsc,
    time::timeout,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use common::{DEADLINE, Process, Run, quartet_at, run_with_stdin, serve};

async fn start_on(addr: SocketAddr, backplane: Arc<LocalBackplane>) -> RunningServer {
    let handler = ChatHandler::new(backplane, ChatConfig::default());
    let server = quartet_chat::server(ServerOptions::default(), Shutdown::new(), handler);
    serve(server, addr).await
}

fn backplane() -> Arc<LocalBackplane> {
    let hub = Arc::new(RoomHub::new(ChatConfig::default().hub_limits()));
    Arc::new(LocalBackplane::new(hub))
}

async fn start() -> RunningServer {
    start_on("127.0.0.1:0".parse().unwrap(), backplane()).await
}

/// A server with bo, a member on the generated client, in the lobby.
async fn bo_in_the_lobby() -> (RunningServer, Member) {
    let server = start().await;
    let bo = Member::join(&server.url(), "lobby", "bo").await;
    (server, bo)
}

/// A member on the generated client, to talk with the CLI.
struct Member {
    sender: mpsc::Sender<ClientEvent>,
    events: Streaming<ServerEvent>,
}

impl Member {
    async fn join(url: &str, room: &str, nick: &str) -> Self {
        let (sender, outbox) = mpsc::channel(16);
        sender
            .send(ClientEvent {
                event: Some(client_event::Event::Join(Join {
                    room: room.into(),
                    nick: nick.into(),
                    since_seq: None,
                })),
            })
            .await
            .unwrap();
        let mut client = ChatServiceClient::connect(url.to_owned()).await.unwrap();
        let events = client
            .chat(ReceiverStream::new(outbox))
            .await
            .unwrap()
            .into_inner();
        Self { sender, events }
    }

    async fn say(&self, text: &str) {
        self.sender
            .send(ClientEvent {
                event: Some(client_event::Event::Say(Say { text: text.into() })),
            })
            .await
            .unwrap();
    }

    async fn next(&mut self) -> Event {
        timeout(DEADLINE, self.events.message())
            .await
            .expect("no event")
            .unwrap()
            .expect("stream ended")
            .event
            .unwrap()
    }

    async fn line_from(&mut self, nick: &str) -> ChatMessage {
        loop {
            if let Event::Message(message) = self.next().await
                && message.nick == nick
            {
                return message;
            }
        }
    }

    async fn left(&mut self, nick: &str) -> LeaveReason {
        loop {
            if let Event::MemberLeft(left) = self.next().await
                && left.nick == nick
            {
                return left.reason();
            }
        }
    }

    async fn joined_event(&mut self, nick: &str) {
        loop {
            if let Event::MemberJoined(joined) = self.next().await
                && joined.nick == nick
            {
                return;
            }
        }
    }
}

/// `quartet` at the chat server `url` with the words of `line` as arguments,
/// and `input` piped on stdin.
async fn run_piped(url: &str, line: &str, input: &str) -> Run {
    run_with_stdin(quartet_at(url).args(line.split_whitespace()), input).await
}

#[tokio::test]
async fn piped_stdin_says_each_line_prints_events_and_leaves_at_the_end() {
    let (server, mut bo) = bo_in_the_lobby().await;
    let run = run_piped(&server.url(), "chat lobby --nick ana", "hola\r\nqué tal\n").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "* joined lobby as ana; here: ana, bo",
            "<ana> hola",
            "<ana> qué tal"
        ],
        "{}",
        run.stderr
    );
    bo.joined_event("ana").await;
    assert_eq!(bo.line_from("ana").await.text, "hola");
    assert_eq!(bo.line_from("ana").await.text, "qué tal");
    assert_eq!(bo.left("ana").await, LeaveReason::Bye);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn text_that_is_not_text_is_shown_escaped() {
    use quartet_chat::{Backplane as _, Nick, RoomName};
    let backplane = backplane();
    let server = start_on("127.0.0.1:0".parse().unwrap(), backplane.clone()).await;
    // A line that never passed the service's checks (an older replica, a
    // stored record), said straight into the room.
    let (room, old) = (
        RoomName::parse("lobby").unwrap(),
        Nick::parse("old").unwrap(),
    );
    let _membership = backplane.join(&room, &old, None).await.unwrap();
    backplane
        .say(&room, &old, "hi\n* admin joined\u{1b}[2J".into())
        .await
        .unwrap();
    let run = run_piped(&server.url(), "chat lobby --nick ana", "").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .lines()
            .any(|line| line == "<old> hi\\u{000A}* admin joined\\u{001B}[2J"),
        "{:?}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bye_leaves_and_nothing_after_it_is_said() {
    let (server, mut bo) = bo_in_the_lobby().await;
    let run = run_piped(
        &server.url(),
        "--output json chat lobby --nick ana",
        "one\nbye\nnever said\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "joined");
    assert_eq!(events[0]["members"], serde_json::json!(["ana", "bo"]));
    assert_eq!(events[1]["event"], "message");
    assert_eq!(events[1]["text"], "one");
    assert_eq!(events[1]["seq"], 1);
    assert_eq!(events.len(), 2, "{}", run.stdout);
    assert_eq!(bo.line_from("ana").await.text, "one");
    assert_eq!(bo.left("ana").await, LeaveReason::Bye);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_taken_nick_exits_one_with_already_exists() {
    let (server, _bo) = bo_in_the_lobby().await;
    let run = run_piped(&server.url(), "chat lobby --nick bo", "hi\n").await;
    run.assert_failed("ALREADY_EXISTS: ");
    assert!(run.stdout.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_session_resumes_after_the_server_goes_away_without_duplicates_or_loss() {
    let rooms = backplane();
    let first = start_on("127.0.0.1:0".parse().unwrap(), rooms.clone()).await;
    let addr = first.local_addr();
    let url = first.url();
    let mut bo = Member::join(&url, "lobby", "bo").await;
    let mut ana = Process::spawn(quartet_at(&url).args("chat lobby --nick ana".split_whitespace()));
    assert!(ana.next_line().await.starts_with("* joined lobby as ana"));
    bo.joined_event("ana").await;
    bo.say("before").await;
    assert_eq!(ana.next_line().await, "<bo> before");

    // The server goes away (GoingAway), and a new one takes its place with
    // the same rooms; bo says lines while ana is still reconnecting.
    first.stop().await.unwrap();
    let second = start_on(addr, rooms).await;
    let bo_again = Member::join(&url, "lobby", "bo").await;
    bo_again.say("while away 1").await;
    bo_again.say("while away 2").await;

    let mut shown = Vec::new();
    while shown.len() < 2 {
        let line = ana.next_line().await;
        if line.starts_with('<') {
            shown.push(line);
        }
    }
    assert_eq!(shown, ["<bo> while away 1", "<bo> while away 2"]);
    bo_again.say("live").await;
    let mut line = ana.next_line().await;
    while line.starts_with('*') {
        line = ana.next_line().await;
    }
    assert_eq!(line, "<bo> live", "nothing twice, nothing lost");

    ana.write("bye\n").await;
    assert_eq!(ana.finish().await.code, Some(0));
    drop(bo);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn bye_while_the_server_is_gone_exits_zero() {
    let server = start().await;
    let mut ana =
        Process::spawn(quartet_at(&server.url()).args("chat lobby --nick ana".split_whitespace()));
    assert!(ana.next_line().await.starts_with("* joined lobby as ana"));
    server.stop().await.unwrap();
    // It keeps trying to rejoin...
    while !ana.next_line().await.starts_with("* cannot rejoin") {}
    // ...and still listens: `bye` ends it.
    ana.write("bye\n").await;
    assert_eq!(ana.finish().await.code, Some(0), "bye while disconnected");
}

/// The CLI in a pseudo-terminal: what a person sees and types.
struct Terminal {
    writer: Box<dyn std::io::Write + Send>,
    output: std_mpsc::Receiver<Vec<u8>>,
    screen: String,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Terminal {
    fn start(url: &str, args: &[&str]) -> Self {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_quartet"));
        command.args(args);
        command.env("QUARTET_CHAT_ADDR", url);
        command.env("TERM", "xterm");
        command.env_remove("QUARTET_OUTPUT");
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let (chunks, output) = std_mpsc::channel();
        std::thread::spawn(move || {
            // Keeps the master open as long as the reader lives.
            let _master = pair.master;
            let mut buffer = [0_u8; 4096];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 || chunks.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self {
            writer,
            output,
            screen: String::new(),
            child,
        }
    }

    /// `quartet chat lobby --nick ana` at `url`, once it has joined and shows
    /// its prompt.
    fn join_lobby_as_ana(url: &str) -> Self {
        let mut terminal = Self::start(url, &["chat", "lobby", "--nick", "ana"]);
        terminal.wait_for("joined lobby as ana");
        terminal.wait_for("> ");
        terminal
    }

    /// Waits until the output contains `text`, then forgets everything up to
    /// and including it, so the next wait looks only at what came after.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.screen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.screen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(error) => panic!(
                    "never saw {text:?} ({error}); the terminal shows {:?}",
                    self.screen
                ),
            }
        }
        let at = self.screen.find(text).unwrap() + text.len();
        self.screen.drain(..at);
    }

    fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Types `keys` that leave, and returns the exit code.
    fn leave_with(mut self, keys: &str) -> u32 {
        self.type_keys(keys);
        self.exit_code()
    }

    fn exit_code(mut self) -> u32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.exit_code();
            }
            assert!(Instant::now() < deadline, "quartet chat did not exit");
            // Drain output so the child never blocks on a full terminal.
            let _ = self.output.recv_timeout(Duration::from_millis(50));
        }
    }
}

/// Runs `steps` on the blocking pool: a terminal is read and written
/// synchronously.
async fn at_the_terminal<T: Send + 'static>(steps: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(steps).await.unwrap()
}

#[tokio::test]
async fn in_a_terminal_incoming_lines_do_not_garble_what_is_being_typed() {
    let (server, mut bo) = bo_in_the_lobby().await;
    let url = server.url();
    let mut terminal = at_the_terminal(move || {
        let mut terminal = Terminal::join_lobby_as_ana(&url);
        // Half a line typed, not sent...
        terminal.type_keys("abc");
        terminal.wait_for("abc");
        terminal
    })
    .await;
    bo.joined_event("ana").await;
    // ...when a line arrives.
    bo.say("incoming").await;
    let mut terminal = at_the_terminal(move || {
        terminal.wait_for("<bo> incoming");
        // The prompt and the half-typed line are drawn again below it.
        terminal.wait_for("> abc");
        terminal.type_keys("def\r");
        terminal
    })
    .await;
    let said = bo.line_from("ana").await;
    assert_eq!(said.text, "abcdef", "the typed line arrives whole");
    let code = at_the_terminal(move || {
        terminal.wait_for("<ana> abcdef");
        terminal.leave_with("bye\r")
    })
    .await;
    assert_eq!((code, bo.left("ana").await), (0, LeaveReason::Bye));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn in_a_terminal_ctrl_d_leaves() {
    let (server, mut bo) = bo_in_the_lobby().await;
    let url = server.url();
    let code = at_the_terminal(move || Terminal::join_lobby_as_ana(&url).leave_with("\u{4}")).await;
    assert_eq!((code, bo.left("ana").await), (0, LeaveReason::Bye));
    server.stop().await.unwrap();
}

/// A telnet user on the gateway and a `quartet chat` user on gRPC share a room.
#[tokio::test]
async fn a_telnet_user_and_a_quartet_chat_user_talk_in_one_room() {
    use quartet_gateway::{Gateway, GatewayOptions, Protocol, UpstreamOptions};

    let chat = start().await;
    let upstreams = UpstreamOptions {
        chat_addr: chat.url(),
        ..UpstreamOptions::default()
    };
    let gateway = Gateway::new(
        GatewayOptions::ephemeral(),
        upstreams,
        Shutdown::new(),
        quartet_runtime::ShutdownPolicy::default(),
        &quartet_runtime::Metrics::new(),
    )
    .bind("127.0.0.1".parse().unwrap())
    .await
    .unwrap()
    .spawn();

    // The telnet user joins first.
    let telnet = tokio::net::TcpStream::connect(gateway.address(Protocol::ChatTcp).unwrap())
        .await
        .unwrap();
    let (read, mut write) = telnet.into_split();
    let mut telnet_lines = BufReader::new(read).lines();
    let mut expect = async |line: &str| {
        let got = timeout(DEADLINE, telnet_lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, line);
    };
    write
        .write_all(b"NICK tele\r\nJOIN sala\r\n")
        .await
        .unwrap();
    expect("OK nick tele").await;
    expect("OK joined sala as tele; here: tele").await;

    // The CLI user joins with piped stdin and says one line.
    let mut cli =
        Process::spawn(quartet_at(&chat.url()).args("chat sala --nick cli".split_whitespace()));
    expect("* cli joined").await;
    cli.write("hola desde grpc\n").await;
    expect("cli hola desde grpc").await;

    write.write_all(b"hola desde telnet\r\n").await.unwrap();
    let mut heard = cli.next_line().await;
    while !heard.contains("hola desde telnet") {
        heard = cli.next_line().await;
    }
    assert_eq!(heard, "<tele> hola desde telnet");
    assert_eq!(cli.finish().await.code, Some(0));
    expect("* cli left").await;
    gateway.stop().await;
    chat.stop().await.unwrap();
}

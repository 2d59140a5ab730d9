//! `quartet chat` against a live chat server: piped (scripted) and in a
//! pseudo-terminal (interactive), and resuming after the server goes away.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use quartet_chat::{ChatConfig, LocalBackplane, RoomHub};
use quartet_proto::chat::v1::{
    ChatMessage, ClientEvent, Join, LeaveReason, Say, ServerEvent,
    chat_service_client::ChatServiceClient, client_event, server_event::Event,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::Command,
    sync::mpsc,
    time::timeout,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const DEADLINE: Duration = Duration::from_secs(30);

async fn start_on(addr: SocketAddr, backplane: Arc<LocalBackplane>) -> RunningServer {
    quartet_chat::server(
        ServerOptions::default(),
        Shutdown::new(),
        ChatConfig::default(),
        backplane,
    )
    .bind(addr)
    .await
    .unwrap()
    .spawn()
    .unwrap()
}

fn backplane() -> Arc<LocalBackplane> {
    let hub = Arc::new(RoomHub::new(ChatConfig::default().hub_limits()));
    Arc::new(LocalBackplane::new(hub))
}

async fn start() -> RunningServer {
    start_on("127.0.0.1:0".parse().unwrap(), backplane()).await
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

fn quartet(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command
        .env_remove("QUARTET_OUTPUT")
        .env_remove("QUARTET_TIMEOUT")
        .env("QUARTET_CHAT_ADDR", url)
        .kill_on_drop(true);
    command
}

async fn run_piped(url: &str, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = quartet(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("quartet chat hung")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn piped_stdin_says_each_line_prints_events_and_leaves_at_the_end() {
    let server = start().await;
    let mut bo = Member::join(&server.url(), "lobby", "bo").await;
    let (code, stdout, stderr) = run_piped(
        &server.url(),
        &["chat", "lobby", "--nick", "ana"],
        "hola\r\nqué tal\n",
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "* joined lobby as ana; here: ana, bo",
            "<ana> hola",
            "<ana> qué tal"
        ],
        "{stderr}"
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
    let (code, stdout, stderr) =
        run_piped(&server.url(), &["chat", "lobby", "--nick", "ana"], "").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|line| line == "<old> hi\\u{000A}* admin joined\\u{001B}[2J"),
        "{stdout:?}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bye_leaves_and_nothing_after_it_is_said() {
    let server = start().await;
    let mut bo = Member::join(&server.url(), "lobby", "bo").await;
    let (code, stdout, stderr) = run_piped(
        &server.url(),
        &["--output", "json", "chat", "lobby", "--nick", "ana"],
        "one\nbye\nnever said\n",
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "joined");
    assert_eq!(events[0]["members"], serde_json::json!(["ana", "bo"]));
    assert_eq!(events[1]["event"], "message");
    assert_eq!(events[1]["text"], "one");
    assert_eq!(events[1]["seq"], 1);
    assert_eq!(events.len(), 2, "{stdout}");
    assert_eq!(bo.line_from("ana").await.text, "one");
    assert_eq!(bo.left("ana").await, LeaveReason::Bye);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_taken_nick_exits_one_with_already_exists() {
    let server = start().await;
    let _bo = Member::join(&server.url(), "lobby", "bo").await;
    let (code, stdout, stderr) =
        run_piped(&server.url(), &["chat", "lobby", "--nick", "bo"], "hi\n").await;
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: ALREADY_EXISTS: "), "{stderr}");
    assert!(stdout.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_session_resumes_after_the_server_goes_away_without_duplicates_or_loss() {
    let rooms = backplane();
    let first = start_on("127.0.0.1:0".parse().unwrap(), rooms.clone()).await;
    let addr = first.local_addr();
    let url = first.url();
    let mut bo = Member::join(&url, "lobby", "bo").await;
    let mut child = quartet(&url)
        .args(["chat", "lobby", "--nick", "ana"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        timeout(DEADLINE, out.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("output ended")
    };
    assert!(next_line().await.starts_with("* joined lobby as ana"));
    bo.joined_event("ana").await;
    bo.say("before").await;
    assert_eq!(next_line().await, "<bo> before");

    // The server goes away (GoingAway), and a new one takes its place with
    // the same rooms; bo says lines while ana is still reconnecting.
    first.stop().await.unwrap();
    let second = start_on(addr, rooms).await;
    let bo_again = Member::join(&url, "lobby", "bo").await;
    bo_again.say("while away 1").await;
    bo_again.say("while away 2").await;

    let mut shown = Vec::new();
    while shown.len() < 2 {
        let line = next_line().await;
        if line.starts_with('<') {
            shown.push(line);
        }
    }
    assert_eq!(shown, ["<bo> while away 1", "<bo> while away 2"]);
    bo_again.say("live").await;
    let mut line = next_line().await;
    while line.starts_with('*') {
        line = next_line().await;
    }
    assert_eq!(line, "<bo> live", "nothing twice, nothing lost");

    stdin.write_all(b"bye\n").await.unwrap();
    let status = timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    drop(bo);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn bye_while_the_server_is_gone_exits_zero() {
    let server = start().await;
    let url = server.url();
    let mut child = quartet(&url)
        .args(["chat", "lobby", "--nick", "ana"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        timeout(DEADLINE, out.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("output ended")
    };
    assert!(next_line().await.starts_with("* joined lobby as ana"));
    server.stop().await.unwrap();
    // It keeps trying to rejoin...
    while !next_line().await.starts_with("* cannot rejoin") {}
    // ...and still listens: `bye` ends it.
    stdin.write_all(b"bye\n").await.unwrap();
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("bye while disconnected did not exit")
        .unwrap();
    assert_eq!(status.code(), Some(0));
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

#[tokio::test]
async fn in_a_terminal_incoming_lines_do_not_garble_what_is_being_typed() {
    let server = start().await;
    let mut bo = Member::join(&server.url(), "lobby", "bo").await;
    let url = server.url();
    let mut terminal = tokio::task::spawn_blocking(move || {
        let mut terminal = Terminal::start(&url, &["chat", "lobby", "--nick", "ana"]);
        terminal.wait_for("joined lobby as ana");
        terminal.wait_for("> ");
        // Half a line typed, not sent...
        terminal.type_keys("abc");
        terminal.wait_for("abc");
        terminal
    })
    .await
    .unwrap();
    bo.joined_event("ana").await;
    // ...when a line arrives.
    bo.say("incoming").await;
    let mut terminal = tokio::task::spawn_blocking(move || {
        terminal.wait_for("<bo> incoming");
        // The prompt and the half-typed line are drawn again below it.
        terminal.wait_for("> abc");
        terminal.type_keys("def\r");
        terminal
    })
    .await
    .unwrap();
    let said = bo.line_from("ana").await;
    assert_eq!(said.text, "abcdef", "the typed line arrives whole");
    let code = tokio::task::spawn_blocking(move || {
        terminal.wait_for("<ana> abcdef");
        terminal.type_keys("bye\r");
        terminal.exit_code()
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(bo.left("ana").await, LeaveReason::Bye);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn in_a_terminal_ctrl_d_leaves() {
    let server = start().await;
    let mut bo = Member::join(&server.url(), "lobby", "bo").await;
    let url = server.url();
    let code = tokio::task::spawn_blocking(move || {
        let mut terminal = Terminal::start(&url, &["chat", "lobby", "--nick", "ana"]);
        terminal.wait_for("joined lobby as ana");
        terminal.wait_for("> ");
        terminal.type_keys("\u{4}");
        terminal.exit_code()
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(bo.left("ana").await, LeaveReason::Bye);
    server.stop().await.unwrap();
}

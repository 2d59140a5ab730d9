//! A chat member for tests: the generated client on one Chat stream, with
//! helpers that wait (with a deadline) for the events a test expects; and the
//! servers they talk to, in-process on port 0, with rooms in this process or
//! in NATS under a prefix that cleans up after itself. The fan-out bench
//! shares this file.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt as _;

use std::time::Duration;

use quartet_chat::{BackplaneOptions, ChatConfig, ChatOptions};
use quartet_e2e::external;
use quartet_proto::chat::v1::{
    ChatMessage, ClientEvent, GetHistoryRequest, GetHistoryResponse, Join, Joined, Leave,
    LeaveReason, ListRoomsRequest, Notice, Room, Say, ServerEvent,
    chat_service_client::ChatServiceClient, client_event, server_event::Event,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tokio::{sync::mpsc, time::timeout};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming, transport::Channel};

/// Every wait finishes well within this; a hang fails instead of stalling CI.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Client events a test may queue ahead of the stream.
const OUTBOX: usize = 64;

/// The default configuration with the rate limit out of the way, for tests
/// that say many lines at once.
pub fn config() -> ChatConfig {
    ChatConfig {
        rate_per_second: 10_000.0,
        rate_burst: 10_000,
        ..ChatConfig::default()
    }
}

/// A server with its rooms in this process.
pub async fn start(config: ChatConfig) -> RunningServer {
    start_with(ServerOptions::default(), config).await
}

/// A server with its rooms in this process, and these server options.
pub async fn start_with(options: ServerOptions, config: ChatConfig) -> RunningServer {
    serve(options, config, &BackplaneOptions::default()).await
}

/// One replica of a deployment whose rooms live in the NATS at `nats_url`,
/// under `prefix`.
pub async fn start_replica(nats_url: &str, prefix: &str, config: ChatConfig) -> RunningServer {
    start_replica_with(&ServerOptions::default(), nats_url, prefix, config).await
}

/// [`start_replica`] with these server options.
pub async fn start_replica_with(
    options: &ServerOptions,
    nats_url: &str,
    prefix: &str,
    config: ChatConfig,
) -> RunningServer {
    let backplane = BackplaneOptions {
        nats_url: Some(nats_url.to_owned()),
        nats_prefix: prefix.to_owned(),
    };
    serve(options.clone(), config, &backplane).await
}

/// The server `quartet-chat` runs, on a free loopback port.
async fn serve(
    options: ServerOptions,
    config: ChatConfig,
    backplane: &BackplaneOptions,
) -> RunningServer {
    let chat = ChatOptions {
        backplane: backplane.clone(),
        config,
    };
    let handler = quartet_chat::handler(&chat).await.unwrap();
    quartet_chat::server(options, Shutdown::new(), handler)
        .spawn_on("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub async fn connect(url: &str) -> ChatServiceClient<Channel> {
    ChatServiceClient::connect(url.to_owned()).await.unwrap()
}

/// ListRooms on the server at `url`.
pub async fn rooms(url: &str) -> Vec<Room> {
    timeout(DEADLINE, connect(url).await.list_rooms(ListRoomsRequest {}))
        .await
        .expect("listing rooms hung")
        .unwrap()
        .into_inner()
        .rooms
}

/// GetHistory on the server at `url`.
pub async fn history(
    url: &str,
    room: &str,
    since_seq: Option<u64>,
    limit: u32,
) -> Result<GetHistoryResponse, Status> {
    let request = GetHistoryRequest {
        room: room.into(),
        since_seq,
        limit,
    };
    let response = timeout(DEADLINE, connect(url).await.get_history(request))
        .await
        .expect("GetHistory hung")?;
    Ok(response.into_inner())
}

/// `first` and `second` say `each` lines at once, interleaved; what each of
/// them received, skipping presence.
pub async fn converse(
    first: &mut Member,
    second: &mut Member,
    each: usize,
) -> (Vec<ChatMessage>, Vec<ChatMessage>) {
    let (to_first, to_second) = (first.sender(), second.sender());
    let saying = tokio::spawn(async move {
        for n in 0..each {
            say(&to_first, &format!("a{n}")).await;
            say(&to_second, &format!("b{n}")).await;
        }
    });
    let received = (first.lines(2 * each).await, second.lines(2 * each).await);
    saying.await.unwrap();
    received
}

/// The sequence numbers of `lines`, in order.
pub fn seqs(lines: &[ChatMessage]) -> Vec<u64> {
    lines.iter().map(|line| line.seq).collect()
}

fn join_event(room: &str, nick: &str, since_seq: Option<u64>) -> ClientEvent {
    ClientEvent {
        event: Some(client_event::Event::Join(Join {
            room: room.into(),
            nick: nick.into(),
            since_seq,
        })),
    }
}

pub async fn say(sender: &mpsc::Sender<ClientEvent>, text: &str) {
    sender
        .send(ClientEvent {
            event: Some(client_event::Event::Say(Say { text: text.into() })),
        })
        .await
        .unwrap();
}

#[derive(Debug)]
pub struct Member {
    sender: Option<mpsc::Sender<ClientEvent>>,
    events: Streaming<ServerEvent>,
}

impl Member {
    pub async fn try_join(
        url: &str,
        room: &str,
        nick: &str,
        since_seq: Option<u64>,
    ) -> Result<Self, Status> {
        let (sender, outbox) = mpsc::channel(OUTBOX);
        sender
            .send(join_event(room, nick, since_seq))
            .await
            .unwrap();
        let mut client = connect(url).await;
        let events = timeout(DEADLINE, client.chat(ReceiverStream::new(outbox)))
            .await
            .expect("join hung")?
            .into_inner();
        Ok(Self {
            sender: Some(sender),
            events,
        })
    }

    pub async fn join(url: &str, room: &str, nick: &str, since_seq: Option<u64>) -> Self {
        Self::try_join(url, room, nick, since_seq).await.unwrap()
    }

    /// Joins with recent history and waits for Joined, for tests that do not
    /// look at it.
    pub async fn enter(url: &str, room: &str, nick: &str) -> Self {
        let mut member = Self::join(url, room, nick, None).await;
        member.joined().await;
        member
    }

    /// Joins over a connection with HTTP/2's minimum receive windows (64 KiB
    /// instead of hyper's 2 MiB), so what a member that stops reading costs is
    /// the server's buffering, not the client's.
    pub async fn join_with_small_window(url: &str, room: &str, nick: &str) -> Self {
        let (sender, outbox) = mpsc::channel(OUTBOX);
        sender.send(join_event(room, nick, None)).await.unwrap();
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let events = ChatServiceClient::new(channel)
            .chat(ReceiverStream::new(outbox))
            .await
            .unwrap()
            .into_inner();
        Self {
            sender: Some(sender),
            events,
        }
    }

    /// Opens a stream whose first event is a Say.
    pub async fn try_first_say(url: &str) -> Result<Self, Status> {
        let (sender, outbox) = mpsc::channel(OUTBOX);
        say(&sender, "hi").await;
        let mut client = connect(url).await;
        let events = client.chat(ReceiverStream::new(outbox)).await?.into_inner();
        Ok(Self {
            sender: Some(sender),
            events,
        })
    }

    /// Opens a stream and closes it without sending anything.
    pub async fn try_empty(url: &str) -> Result<Self, Status> {
        let mut client = connect(url).await;
        let events = client.chat(tokio_stream::empty()).await?.into_inner();
        Ok(Self {
            sender: None,
            events,
        })
    }

    pub fn sender(&self) -> mpsc::Sender<ClientEvent> {
        self.sender.clone().unwrap()
    }

    pub async fn say(&self, text: &str) {
        say(self.sender.as_ref().unwrap(), text).await;
    }

    /// Says `l1` to `l{count}`, and waits until they come back.
    pub async fn say_numbered(&mut self, count: usize) {
        for n in 1..=count {
            self.say(&format!("l{n}")).await;
        }
        self.lines(count).await;
    }

    pub async fn leave(&self) {
        self.sender
            .as_ref()
            .unwrap()
            .send(ClientEvent {
                event: Some(client_event::Event::Leave(Leave {})),
            })
            .await
            .unwrap();
    }

    pub async fn join_again(&self, room: &str) {
        self.sender
            .as_ref()
            .unwrap()
            .send(join_event(room, "again", None))
            .await
            .unwrap();
    }

    pub fn close_sending(&mut self) {
        self.sender = None;
    }

    /// The member's outbox and its stream, for a test that reads the stream
    /// on a task of its own.
    pub fn into_parts(self) -> (Option<mpsc::Sender<ClientEvent>>, Streaming<ServerEvent>) {
        (self.sender, self.events)
    }

    /// The next event; panics on the end of the stream.
    pub async fn next(&mut self) -> Event {
        let message = timeout(DEADLINE, self.events.message())
            .await
            .expect("no event within the deadline")
            .unwrap_or_else(|status| panic!("stream failed: {status:?}"))
            .expect("stream ended");
        message.event.expect("an event with nothing set")
    }

    pub async fn joined(&mut self) -> Joined {
        match self.next().await {
            Event::Joined(joined) => joined,
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    /// The next `count` lines, skipping presence events.
    pub async fn lines(&mut self, count: usize) -> Vec<ChatMessage> {
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            match self.next().await {
                Event::Message(message) => lines.push(message),
                Event::MemberJoined(_) | Event::MemberLeft(_) => {}
                other => panic!("expected a line, got {other:?}"),
            }
        }
        lines
    }

    pub async fn notice(&mut self) -> Notice {
        loop {
            match self.next().await {
                Event::Notice(notice) => return notice,
                Event::MemberJoined(_) | Event::MemberLeft(_) => {}
                other => panic!("expected a notice, got {other:?}"),
            }
        }
    }

    /// The next presence event about `nick`: `None` for a join, the reason
    /// for a leave. Lines in between are skipped.
    pub async fn presence_of(&mut self, nick: &str) -> Option<LeaveReason> {
        loop {
            match self.next().await {
                Event::MemberJoined(joined) if joined.nick == nick => return None,
                Event::MemberLeft(left) if left.nick == nick => return Some(left.reason()),
                _ => {}
            }
        }
    }

    /// How the stream ends, skipping any events before: OK or the error code.
    pub async fn end(&mut self) -> Code {
        loop {
            match timeout(DEADLINE, self.events.message())
                .await
                .expect("the stream did not end")
            {
                Ok(Some(_)) => {}
                Ok(None) => return Code::Ok,
                Err(status) => return status.code(),
            }
        }
    }

    /// The error that ends the stream next (panics on an event or OK).
    pub async fn end_status(&mut self) -> Status {
        match timeout(DEADLINE, self.events.message())
            .await
            .expect("the stream did not end")
        {
            Err(status) => status,
            other => panic!("expected an error status, got {other:?}"),
        }
    }
}

/// The NATS to test against, or `None` after a visible SKIPPED line (written
/// to stderr directly, past the test harness' capture). Under `CI=true` a
/// missing NATS is a failure: CI must not skip silently.
pub fn nats_url() -> Option<String> {
    external::required(external::NATS_URL, "nats backplane test")
}

/// A prefix unique to one test; everything created under it is deleted when
/// the test ends, passing or not.
pub struct Prefix {
    url: String,
    pub name: String,
}

impl Prefix {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("qtest-{}", nuid::next()),
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.name.clone());
        // Drop cannot await, and may run while a runtime is panicking: clean
        // up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(clean_up(&url, &prefix));
        })
        .join();
    }
}

/// Deletes every stream and bucket created under `prefix`.
async fn clean_up(url: &str, prefix: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let names: Vec<String> = jetstream
        .stream_names()
        .filter_map(|name| async move { name.ok() })
        .collect()
        .await;
    for name in names {
        if name.starts_with(&format!("{prefix}_chat_"))
            || name == format!("KV_{prefix}_chat_members")
        {
            jetstream.delete_stream(&name).await.unwrap();
        }
    }
}

//! A chat member for tests: the generated client on one Chat stream, with
//! helpers that wait (with a deadline) for the events a test expects.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt as _;

use std::{sync::Arc, time::Duration};

use quartet_chat::{ChatConfig, LocalBackplane, RoomHub};
use quartet_proto::chat::v1::{
    ChatMessage, ClientEvent, Join, Joined, Leave, LeaveReason, Notice, Say, ServerEvent,
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

pub async fn start(config: ChatConfig) -> RunningServer {
    start_with(ServerOptions::default(), config).await
}

pub async fn start_with(options: ServerOptions, config: ChatConfig) -> RunningServer {
    let hub = Arc::new(RoomHub::new(config.hub_limits()));
    quartet_chat::server(
        options,
        Shutdown::new(),
        config,
        Arc::new(LocalBackplane::new(hub)),
    )
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap()
    .spawn()
    .unwrap()
}

pub async fn connect(url: &str) -> ChatServiceClient<Channel> {
    ChatServiceClient::connect(url.to_owned()).await.unwrap()
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
    use std::io::Write as _;
    let url = std::env::var("QUARTET_TEST_NATS_URL").ok();
    if url.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "QUARTET_TEST_NATS_URL must be set in CI"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED nats backplane test: QUARTET_TEST_NATS_URL is not set"
        );
    }
    url
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

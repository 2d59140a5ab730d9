//! A room's lines in JetStream: one stream per room, whose sequence is the
//! room's `seq`. Storing a line, reading a room's stream into the hub, and
//! finding the rooms the streams hold.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, push},
    stream::{self, DiscardPolicy, StorageType},
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::writer::{WriteError, Writer};
use crate::{
    error::ChatError,
    event::{ChatLine, Encoding},
    hub::RoomHub,
    names::{Nick, RoomName},
};

/// Pause before re-reading a room's stream after the consumer failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A line as stored in a room's stream; the sequence is the stream's own.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLine {
    id: String,
    room: String,
    nick: String,
    text: String,
    time: SystemTime,
}

/// The stream named `name` that holds `room`'s lines on `subject`, created
/// if new (keeping the last `retain` lines of up to `max_text_bytes` each),
/// and its last sequence number.
pub(super) async fn open(
    jetstream: &jetstream::Context,
    room: &RoomName,
    name: String,
    subject: String,
    retain: usize,
    max_text_bytes: usize,
) -> Result<(stream::Stream, u64), ChatError> {
    let error = ChatError::backplane("cannot open the room's stream");
    let max_message_size = i32::try_from(max_text_bytes + 1024).unwrap_or(i32::MAX);
    let mut stream = jetstream
        .get_or_create_stream(stream::Config {
            name,
            description: Some(room.to_string()),
            subjects: vec![subject],
            max_messages: i64::try_from(retain).unwrap_or(i64::MAX),
            discard: DiscardPolicy::Old,
            max_message_size,
            storage: StorageType::File,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| error(e.to_string()))?;
    let last_seq = stream
        .info()
        .await
        .map_err(|e| error(e.to_string()))?
        .state
        .last_sequence;
    Ok((stream, last_seq))
}

/// Whether the stream `name` exists (GetHistory opens no new room).
pub(super) async fn exists(
    jetstream: &jetstream::Context,
    name: String,
) -> Result<bool, ChatError> {
    match jetstream.get_stream(name).await {
        Ok(_) => Ok(true),
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(ChatError::Backplane(error.to_string())),
    }
}

/// Longest a Say waits for JetStream to confirm its line, retries of a
/// line whose answer was lost included; then its sayer is told the line may
/// or may not have been said.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts to learn the fate of a line whose answer was lost.
const STORE_RETRY: Duration = Duration::from_millis(250);

/// Stores a line `nick` said in `room` on the room's `subject`; JetStream
/// gives it its sequence number.
///
/// `Ok` means stored, once. [`ChatError::LineNotSaid`] means it was not
/// stored and never will be. A line whose publication was lost on the way
/// (NATS went away before answering) is published again, under the same
/// message id, until JetStream answers or [`STORE_TIMEOUT`] passes
/// ([`ChatError::LineInDoubt`]): JetStream keeps one copy per id, so the
/// retries cannot store it twice.
pub(super) async fn store_line(
    writer: &Writer,
    subject: String,
    room: &RoomName,
    nick: &Nick,
    text: String,
) -> Result<(), ChatError> {
    let stored = StoredLine {
        id: nuid::next().to_string(),
        room: room.to_string(),
        nick: nick.to_string(),
        text,
        time: SystemTime::now(),
    };
    let payload: Bytes = serde_json::to_vec(&stored)
        .map_err(|e| ChatError::LineNotSaid(e.to_string()))?
        .into();
    let deadline = Instant::now() + STORE_TIMEOUT;
    let mut doubt = None;
    loop {
        match writer
            .publish(subject.clone(), &stored.id, payload.clone())
            .await
        {
            Ok(()) => return Ok(()),
            // A refusal settles a line only if no earlier attempt may have
            // stored it.
            Err(WriteError::Refused(why)) if doubt.is_none() => {
                return Err(ChatError::LineNotSaid(why));
            }
            Err(WriteError::Refused(_)) => {}
            Err(WriteError::InDoubt(why)) => {
                warn!(room = %room, id = %stored.id, %why, "line unconfirmed; publishing it again");
                doubt = Some(why);
            }
        }
        if Instant::now() + STORE_RETRY >= deadline {
            let why = doubt.unwrap_or_default();
            return Err(ChatError::LineInDoubt(why));
        }
        tokio::time::sleep(STORE_RETRY).await;
    }
}

/// The rooms whose streams are named `{prefix}{hash}`, by hash, with their
/// last sequence numbers.
pub(super) async fn rooms(
    jetstream: &jetstream::Context,
    prefix: &str,
) -> Result<BTreeMap<String, (RoomName, u64)>, ChatError> {
    let error = ChatError::backplane("cannot list rooms");
    let mut rooms = BTreeMap::new();
    let mut streams = jetstream.streams();
    while let Some(info) = streams.next().await {
        let info = info.map_err(|e| error(e.to_string()))?;
        let Some(hash) = info.config.name.strip_prefix(prefix) else {
            continue;
        };
        let Some(name) = info
            .config
            .description
            .as_deref()
            .and_then(|name| RoomName::parse(name).ok())
        else {
            continue;
        };
        rooms.insert(hash.to_owned(), (name, info.state.last_sequence));
    }
    Ok(rooms)
}

/// Turns a stored line into a domain line with its sequence number.
fn decode_line(room: &RoomName, seq: u64, payload: &[u8]) -> Option<ChatLine> {
    let stored: StoredLine = serde_json::from_slice(payload).ok()?;
    if stored.room != room.as_str() {
        return None;
    }
    Some(ChatLine {
        id: stored.id,
        seq,
        room: room.clone(),
        nick: Nick::parse(&stored.nick).ok()?,
        text: stored.text,
        time: stored.time,
        encoding: Encoding::default(),
    })
}

/// Reads a room's stream into the hub, in order, for as long as the backplane
/// lives; after a failure it resumes after the last line applied.
pub(super) async fn read_lines(
    stream: stream::Stream,
    client: async_nats::Client,
    subject: String,
    hub: Arc<RoomHub>,
    room: RoomName,
    applied: watch::Sender<u64>,
    stop: CancellationToken,
) {
    loop {
        let start_sequence = hub.last_seq(&room).unwrap_or(0) + 1;
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
                ..push::OrderedConfig::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = messages.next() => message,
                };
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        warn!(room = %room, %error, "room reader failed; resuming");
                        break;
                    }
                    None => break,
                };
                let Ok(info) = message.info() else { continue };
                let seq = info.stream_sequence;
                if let Some(line) = decode_line(&room, seq, &message.payload) {
                    if let Err(error) = hub.apply_line(line) {
                        warn!(room = %room, seq, %error, "cannot apply line");
                    }
                } else {
                    warn!(room = %room, seq, "skipping a malformed stored line");
                }
                applied.send_replace(seq);
            },
            Err(error) => warn!(room = %room, %error, "cannot read the room's stream"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

//! Writes whose failure is reported must not happen later: a line its sayer
//! was told was not said, the nick claim of a join that was refused.
//!
//! The main client keeps what it is asked to send while it reconnects, and
//! sends it once NATS is back: a line that timed out during an outage, and
//! that its sayer was told had failed, would be stored after all and shown to
//! everyone. So these writes go through a connection of their own that does
//! not wait for NATS to come back: when it drops it gives up, and whatever it
//! still held is dropped with it. The next write opens a new connection,
//! which fails at once while NATS is away: a definite "not done".
//!
//! What stays uncertain is a write that was on the wire when the connection
//! dropped (or whose acknowledgement did not come in time): JetStream may or
//! may not have stored it. [`WriteError::InDoubt`] says so, and callers
//! resolve it (a line is published again under the same `Nats-Msg-Id`, which
//! JetStream stores at most once).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::{
    connection::State,
    jetstream::{self, context::PublishErrorKind, kv, message::PublishMessage},
};
use bytes::Bytes;
use tokio::sync::OnceCell;

/// Longest a write waits to open a new connection: while NATS is away, each
/// write fails after at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a write was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum WriteError {
    /// It was not done, and will not be: nothing of it is left anywhere.
    #[error("{0}")]
    Refused(String),
    /// It may or may not have been done: it reached the wire, and no answer
    /// came back.
    #[error("{0}")]
    InDoubt(String),
}

/// A connection for writes that must not outlive their answer, opened again
/// when the last one dropped.
#[derive(Debug)]
pub(super) struct Writer {
    url: String,
    bucket: String,
    /// The current connection; a fresh cell when it dropped, so concurrent
    /// writes share one attempt to open the next.
    current: Mutex<Arc<OnceCell<Link>>>,
}

/// One connection of the writer, with the nick claims bucket on it.
#[derive(Debug, Clone)]
pub(super) struct Link {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The nick claims, written through this connection.
    pub(super) claims: kv::Store,
}

impl Writer {
    /// A writer to the NATS at `url`; `bucket` is the nick claims bucket.
    pub(super) fn new(url: &str, bucket: &str) -> Self {
        Self {
            url: url.to_owned(),
            bucket: bucket.to_owned(),
            current: Mutex::default(),
        }
    }

    /// The current connection, or a new one if it dropped; `Refused` when
    /// NATS cannot be reached now (nothing was sent).
    pub(super) async fn link(&self) -> Result<Link, WriteError> {
        let cell = self.cell();
        let link = cell.get_or_try_init(|| self.open()).await?;
        if link.is_up() {
            return Ok(link.clone());
        }
        let cell = self.replace(&cell);
        cell.get_or_try_init(|| self.open()).await.cloned()
    }

    /// Stores `payload` on `subject` under the message id `id`: a second
    /// publication with the same id is stored at most once (within the
    /// stream's duplicate window), so an `InDoubt` publication can be
    /// published again to learn its fate.
    pub(super) async fn publish(
        &self,
        subject: String,
        id: &str,
        payload: Bytes,
    ) -> Result<(), WriteError> {
        let link = self.link().await?;
        let message = PublishMessage::build().payload(payload).message_id(id);
        // An error here means it was never handed to the connection.
        let ack = link
            .jetstream
            .send_publish(subject, message)
            .await
            .map_err(|error| WriteError::Refused(error.to_string()))?;
        ack.await.map(drop).map_err(|error| {
            let answered = matches!(
                error.kind(),
                PublishErrorKind::StreamNotFound
                    | PublishErrorKind::WrongLastMessageId
                    | PublishErrorKind::WrongLastSequence
            ) || std::error::Error::source(&error)
                .is_some_and(<dyn std::error::Error>::is::<jetstream::Error>);
            if answered {
                // JetStream (or the absence of any stream) said no.
                WriteError::Refused(error.to_string())
            } else {
                WriteError::InDoubt(error.to_string())
            }
        })
    }

    fn cell(&self) -> Arc<OnceCell<Link>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a fresh cell in place of `dropped`, unless another write already
    /// did, and returns the current one.
    fn replace(&self, dropped: &Arc<OnceCell<Link>>) -> Arc<OnceCell<Link>> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::ptr_eq(&current, dropped) {
            *current = Arc::default();
        }
        current.clone()
    }

    async fn open(&self) -> Result<Link, WriteError> {
        let refused = |error: String| WriteError::Refused(format!("cannot reach nats: {error}"));
        let client = async_nats::ConnectOptions::new()
            .name("quartet-chat-writer")
            .connection_timeout(CONNECT_TIMEOUT)
            // Counted with the first connect: one immediate attempt after a
            // drop, then the connection gives up and drops what it held.
            .max_reconnects(1)
            .connect(self.url.as_str())
            .await
            .map_err(|error| refused(error.to_string()))?;
        let jetstream = jetstream::new(client.clone());
        let claims = jetstream
            .get_key_value(&self.bucket)
            .await
            .map_err(|error| refused(error.to_string()))?;
        Ok(Link {
            client,
            jetstream,
            claims,
        })
    }
}

impl Link {
    fn is_up(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

//! The `LISTEN` connection: every replica's commits `NOTIFY` the latest
//! revision, and this turns those notifications into revisions for the tailer,
//! reconnecting (with backoff) whenever the connection is lost.

use std::{future::poll_fn, time::Duration};

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::announce;

/// Shortest wait between listener reconnection attempts.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between listener reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Turns `NOTIFY`s from every replica's commits into revisions for the tailer.
pub(super) struct CommitListener {
    config: tokio_postgres::Config,
    channel: String,
    commits: watch::Sender<u64>,
}

impl CommitListener {
    /// A listener on `channel` of the database `config` names, announcing on
    /// `commits`.
    pub(super) fn new(
        config: tokio_postgres::Config,
        channel: String,
        commits: watch::Sender<u64>,
    ) -> Self {
        Self {
            config,
            channel,
            commits,
        }
    }

    /// Listens, and listens again after every lost connection, until `stop`.
    pub(super) async fn run(self, stop: CancellationToken) {
        let mut delay = MIN_RECONNECT_DELAY;
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                listened = self.listen() => listened,
            };
            match listened {
                Ok(()) => delay = MIN_RECONNECT_DELAY,
                Err(error) => {
                    warn!(error = %error, retry_in = ?delay, "lost the commit notifications connection");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    /// Listens until the connection ends.
    async fn listen(&self) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = self.config.connect(NoTls).await?;
        let listen = format!("LISTEN \"{}\"", self.channel.replace('"', "\"\""));
        let subscribe = client.batch_execute(&listen);
        tokio::pin!(subscribe);
        let mut subscribed = false;
        loop {
            tokio::select! {
                result = &mut subscribe, if !subscribed => {
                    result?;
                    subscribed = true;
                    // Commits may have happened while we were away: look.
                    self.commits.send_modify(|_| {});
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(notification))) => {
                        if let Ok(revision) = notification.payload().parse::<u64>() {
                            announce(&self.commits, revision);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                },
            }
        }
    }
}

//! The request/answer protocols (transform, database, weather): one task per
//! connection reads lines, starts each request's upstream call at once, and
//! writes the answers in request order.
//!
//! Pipelined requests therefore run concurrently upstream, up to
//! `--max-pipelined` per connection; past that the connection stops reading, so
//! neither a fast writer nor a slow reader can make the gateway buffer without
//! bound (a reader that stops reading altogether is cut after the idle timeout).

use std::{future::Future, pin::Pin, time::Duration};

use futures_util::{FutureExt as _, StreamExt as _, stream::FuturesOrdered};
use tokio::{
    io::{AsyncWriteExt as _, BufWriter},
    net::TcpStream,
    time::{Instant, sleep_until, timeout},
};
use tokio_util::codec::FramedRead;

use crate::codec::{Line, LineCodec, LineError};
use crate::upstreams::err;

/// Initial read buffer of a connection: enough for typical request lines, and
/// it grows (up to the line limit) for longer ones. tokio-util's default, 8 KiB,
/// would make 10,000 idle connections cost 80 MiB before they said a word.
pub const READ_BUFFER: usize = 512;
/// Write buffer of a connection: answers longer than this go straight to the
/// socket.
pub const WRITE_BUFFER: usize = 1024;

/// What a request line is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// These lines; the connection goes on.
    Lines(Vec<String>),
    /// These lines, then the connection closes (`QUIT`).
    Close(Vec<String>),
}

impl Reply {
    /// One line.
    pub fn line(line: impl Into<String>) -> Self {
        Self::Lines(vec![line.into()])
    }
}

/// A future answer.
pub type PendingReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A text protocol answered one line at a time.
pub trait LineProtocol: Send + Sync + 'static {
    /// Starts answering one request line (without its line ending).
    fn handle(&self, line: String) -> PendingReply;
}

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest line.
    pub max_line_bytes: usize,
    /// Longest wait for a line (or for the client to take an answer).
    pub idle_timeout: Duration,
    /// Requests in flight at once.
    pub max_pipelined: usize,
}

/// The parts of a command line: the verb in upper case, and the rest after one
/// space (spaces inside it kept).
pub fn split_command(line: &str) -> (String, &str) {
    match line.split_once(' ') {
        Some((verb, rest)) => (verb.to_ascii_uppercase(), rest),
        None => (line.to_ascii_uppercase(), ""),
    }
}

fn ready(reply: Reply) -> PendingReply {
    Box::pin(std::future::ready(reply))
}

/// Serves one connection until the client quits or goes, it idles out, a line
/// is too long, or `drain` fires (answers already started are still written).
pub async fn serve_connection<P: LineProtocol + ?Sized>(
    stream: TcpStream,
    protocol: &P,
    limits: ConnectionLimits,
    drain: impl Future<Output = ()>,
) {
    let (read, write) = stream.into_split();
    let mut lines =
        FramedRead::with_capacity(read, LineCodec::new(limits.max_line_bytes), READ_BUFFER);
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, write);
    let mut pending: FuturesOrdered<PendingReply> = FuturesOrdered::new();
    let mut closing = false;
    let mut idle_deadline = Instant::now() + limits.idle_timeout;
    tokio::pin!(drain);

    loop {
        if closing && pending.is_empty() {
            break;
        }
        let reading = !closing && pending.len() < limits.max_pipelined;
        tokio::select! {
            Some(reply) = pending.next(), if !pending.is_empty() => {
                let mut replies = vec![reply];
                // Whatever else is answered already goes out in the same write.
                while let Some(Some(reply)) = pending.next().now_or_never() {
                    replies.push(reply);
                }
                for reply in replies {
                    let (lines, close) = match reply {
                        Reply::Lines(lines) => (lines, false),
                        Reply::Close(lines) => (lines, true),
                    };
                    if write_lines(&mut out, &lines, limits.idle_timeout).await.is_err() {
                        return;
                    }
                    if close {
                        // Nothing after QUIT is answered.
                        closing = true;
                        pending.clear();
                        break;
                    }
                }
                if flush(&mut out, limits.idle_timeout).await.is_err() {
                    return;
                }
                idle_deadline = Instant::now() + limits.idle_timeout;
            }
            line = lines.next(), if reading => {
                idle_deadline = Instant::now() + limits.idle_timeout;
                match line {
                    Some(Ok(Line::Text(line))) => pending.push_back(protocol.handle(line)),
                    Some(Ok(Line::NotUtf8)) => pending.push_back(ready(Reply::line(err(
                        "INVALID_ARGUMENT",
                        "line is not valid UTF-8",
                    )))),
                    Some(Err(LineError::TooLong)) => {
                        pending.push_back(ready(Reply::Close(vec!["ERR line too long".into()])));
                        closing = true;
                    }
                    Some(Err(LineError::Io(_))) => return,
                    // The client closed its side: answer what it asked, then close.
                    None => closing = true,
                }
            }
            () = sleep_until(idle_deadline), if pending.is_empty() => {
                let _ = write_lines(&mut out, &[err("DEADLINE_EXCEEDED", "idle timeout")], limits.idle_timeout).await;
                let _ = flush(&mut out, limits.idle_timeout).await;
                return;
            }
            () = &mut drain, if !closing => closing = true,
        }
    }
    let _ = flush(&mut out, limits.idle_timeout).await;
    let _ = out.shutdown().await;
}

/// Writes lines, giving up when the client takes nothing for `patience`.
async fn write_lines(
    out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    lines: &[String],
    patience: Duration,
) -> Result<(), ()> {
    for line in lines {
        let written = timeout(patience, async {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return Err(());
        }
    }
    Ok(())
}

async fn flush(
    out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    patience: Duration,
) -> Result<(), ()> {
    match timeout(patience, out.flush()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn commands_split_on_the_first_space_and_keep_the_rest() {
        assert_eq!(
            split_command("upper  hola  mundo"),
            ("UPPER".into(), " hola  mundo")
        );
        assert_eq!(split_command("HELP"), ("HELP".into(), ""));
        assert_eq!(split_command(""), (String::new(), ""));
    }
}

//! One request/answer connection (transform, database, weather): this module
//! owns the bytes, a [`Session`] owns the order.
//!
//! The driver reads lines and hands each to the connection's session at once,
//! so a pasted script is pipelined; it writes answers in request order,
//! coalescing every answer that is ready into one write. The session decides
//! what may run concurrently (see [`crate::ordered`] and the transform stream):
//! on one connection each command sees the effects of every command before it.
//!
//! Bounds: at most `--max-pipelined` requests are taken and unanswered at once;
//! past that the connection stops reading, so neither a fast writer nor a slow
//! reader makes the gateway buffer without bound (a reader that stops reading
//! altogether is cut after the idle timeout).

use std::{
    future::{Future, poll_fn},
    pin::pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{StreamExt as _, task::noop_waker_ref};
use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpStream, tcp::OwnedWriteHalf},
    time::{Instant, sleep_until, timeout},
};
use tokio_util::codec::FramedRead;

use crate::{
    codec::{Line, LineCodec, LineError},
    reply::{self, Reply},
};

/// Initial read buffer of a connection: enough for typical request lines, and
/// it grows (up to the line limit) for longer ones. tokio-util's default, 8 KiB,
/// would make 10,000 idle connections cost 80 MiB before they said a word.
pub const READ_BUFFER: usize = 512;
/// Write buffer of a chat connection: answers longer than this go straight to
/// the socket.
pub const WRITE_BUFFER: usize = 1024;
/// Capacity a request/answer connection's answer buffer keeps between writes;
/// a larger one (a long `LIST`) is given back, so idle connections stay small.
const KEPT_ANSWER_BUFFER: usize = 16 * 1024;

/// A request, as the driver hands it to a session.
#[derive(Debug)]
pub enum Request {
    /// A line of text, without its line ending.
    Line(String),
    /// A request the driver answered itself (a line that is not UTF-8, one too
    /// long); it still takes its turn among the answers.
    Answered(Reply),
}

/// What answers one connection's requests, in the order they came.
///
/// The driver pushes every request as soon as it is read and polls for answers;
/// the session starts upstream work as its ordering rule allows and hands
/// answers back strictly in request order. After a reply that closes the
/// connection, later requests are dropped unanswered and never started.
pub trait Session: Send {
    /// Takes the next request.
    fn push(&mut self, request: Request);

    /// Requests taken and not yet answered.
    fn pending(&self) -> usize;

    /// The answer to the oldest unanswered request, once it is ready. Only
    /// called while [`Session::pending`] is above zero.
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Reply>;
}

/// A text protocol served as request/answer connections.
pub trait LineProtocol: Send + Sync + 'static {
    /// The state of one new connection.
    fn session(&self) -> Box<dyn Session>;
}

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest line.
    pub max_line_bytes: usize,
    /// Longest wait for a line (or for the client to take an answer).
    pub idle_timeout: Duration,
    /// Requests taken and unanswered at once.
    pub max_pipelined: usize,
}

/// Serves one connection until the client quits or goes, it idles out, a line
/// is too long, or `drain` fires (requests already read are still answered).
pub async fn serve_connection(
    stream: TcpStream,
    mut session: Box<dyn Session>,
    limits: ConnectionLimits,
    drain: impl Future<Output = ()>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines =
        FramedRead::with_capacity(read, LineCodec::new(limits.max_line_bytes), READ_BUFFER);
    let mut answers = Vec::new();
    let mut reading = true;
    // The idle timer is armed once and moved only when it fires early: the
    // last activity is a plain timestamp, so a line costs no timer update.
    let mut last_activity = Instant::now();
    let mut idle = pin!(sleep_until(last_activity + limits.idle_timeout));
    let mut drain = pin!(drain);

    loop {
        let pending = session.pending();
        if !reading && pending == 0 {
            break;
        }
        tokio::select! {
            reply = poll_fn(|cx| session.poll_reply(cx)), if pending > 0 => {
                let close = take_ready_replies(session.as_mut(), &reply, &mut answers);
                if send(&mut write, &mut answers, limits.idle_timeout).await.is_err() || close {
                    break;
                }
                last_activity = Instant::now();
            }
            line = lines.next(), if reading && pending < limits.max_pipelined => {
                last_activity = Instant::now();
                match line {
                    Some(Ok(Line::Text(line))) => session.push(Request::Line(line)),
                    Some(Ok(Line::NotUtf8)) => session.push(Request::Answered(reply::not_utf8())),
                    Some(Err(LineError::TooLong)) => {
                        session.push(Request::Answered(reply::too_long()));
                        reading = false;
                    }
                    Some(Err(LineError::Io(_))) => return,
                    // The client closed its side: answer what it asked, then close.
                    None => reading = false,
                }
            }
            () = idle.as_mut(), if pending == 0 => {
                let deadline = last_activity + limits.idle_timeout;
                if deadline > Instant::now() {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                let mut farewell = Vec::new();
                append(&mut farewell, &reply::idle_timeout());
                let _ = send(&mut write, &mut farewell, limits.idle_timeout).await;
                return;
            }
            () = &mut drain, if reading => reading = false,
        }
    }
    let _ = write.shutdown().await;
}

/// Appends `first` and every other answer that is ready already, so answers
/// that are ready together go out in one write. Returns whether one of them
/// closes the connection.
fn take_ready_replies(session: &mut dyn Session, first: &Reply, answers: &mut Vec<u8>) -> bool {
    if append(answers, first) {
        return true;
    }
    let mut cx = Context::from_waker(noop_waker_ref());
    while session.pending() > 0 {
        // A pending poll registered no one; the driver polls again with its
        // own waker before it sleeps.
        let Poll::Ready(reply) = session.poll_reply(&mut cx) else {
            break;
        };
        if append(answers, &reply) {
            return true;
        }
    }
    false
}

/// Appends one reply and its line ending; returns whether it closes.
fn append(answers: &mut Vec<u8>, reply: &Reply) -> bool {
    answers.extend_from_slice(reply.text().as_bytes());
    answers.push(b'\n');
    reply.closes()
}

/// Writes the answers, giving up on a client that takes nothing for `patience`.
async fn send(
    write: &mut OwnedWriteHalf,
    answers: &mut Vec<u8>,
    patience: Duration,
) -> Result<(), ()> {
    let written = timeout(patience, write.write_all(answers)).await;
    answers.clear();
    if answers.capacity() > KEPT_ANSWER_BUFFER {
        answers.shrink_to(KEPT_ANSWER_BUFFER);
    }
    match written {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

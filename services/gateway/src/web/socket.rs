//! One WebSocket as a line transport: frames in become [`Input`]s, lines out
//! go through a bounded queue to a writer that also pings. Both protocols of
//! the web door (chat, weather) ride on it, so the limits hold for both.
//!
//! How it ends: the client closes or sends a frame the protocol refuses (the
//! reader records the close code and ends the input); the protocol is done
//! and drops its [`WebSink`] (the writer sends what is queued, then the
//! close); or the browser stops answering pings or taking lines (the writer
//! gives up and ends the input). The close frame carries the recorded code,
//! 1000 when nothing went wrong.

use std::{
    future::Future,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{
    SinkExt as _, Stream, StreamExt as _,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior, interval_at, timeout},
};
use tokio_util::sync::CancellationToken;

use super::limits::{self, Frame, WebLimits};
use crate::chat::session::{Input, LineSink};

/// Lines queued for one socket's writer. A browser that stops reading fills
/// it (after the TCP buffers), and the protocol then waits on its sink as it
/// would on a telnet user's full socket: it is closed after the idle timeout,
/// and the chat service meanwhile skips it ahead with a gap.
pub const OUTGOING: usize = 64;

/// What the reader and the writer of one socket share.
#[derive(Debug, Default)]
struct Shared {
    /// The close to send, once something went wrong.
    close: Mutex<Option<CloseFrame>>,
    /// A pong came since the last ping.
    ponged: AtomicBool,
    /// Fired when the writer stops: the reader stops too.
    done: CancellationToken,
}

impl Shared {
    /// Records why the socket closes; the first reason wins.
    fn close_with(&self, code: u16, reason: &str) {
        let mut close = self.close.lock().unwrap_or_else(PoisonError::into_inner);
        close.get_or_insert_with(|| limits::close(code, reason));
    }
}

/// Where a protocol writes its lines: one text frame each.
#[derive(Debug)]
pub struct WebSink {
    lines: mpsc::Sender<String>,
    patience: Duration,
}

impl LineSink for WebSink {
    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        match timeout(self.patience, self.lines.send(line.to_owned())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::ErrorKind::BrokenPipe.into()),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Splits `socket` into the client's lines, a sink for ours, and the writer
/// to run alongside them (it ends when the sink is dropped or the socket is
/// dead).
pub fn open(
    socket: WebSocket,
    limits: WebLimits,
) -> (
    impl Stream<Item = Input> + Send + Unpin + 'static,
    WebSink,
    impl Future<Output = ()> + Send + 'static,
) {
    let (out, incoming) = socket.split();
    let shared = Arc::new(Shared::default());
    let (lines, queued) = mpsc::channel(OUTGOING);
    let sink = WebSink {
        lines,
        patience: limits.idle,
    };
    let input = Box::pin(read(incoming, limits, shared.clone()));
    (input, sink, write(out, queued, limits, shared))
}

/// The client's frames as lines, until it closes, a frame is refused, or the
/// writer stops.
fn read(
    incoming: SplitStream<WebSocket>,
    limits: WebLimits,
    shared: Arc<Shared>,
) -> impl Stream<Item = Input> + Send + 'static {
    let done = shared.done.clone();
    let frames = Box::pin(incoming.take_until(done.cancelled_owned()));
    futures_util::stream::unfold(Some(frames), move |state| {
        let shared = shared.clone();
        async move {
            let mut frames = state?;
            loop {
                let frame = match frames.next().await {
                    Some(Ok(message)) => limits::frame(message, limits),
                    Some(Err(error)) => limits::read_error(error),
                    None => Frame::Closed,
                };
                match frame {
                    Frame::Line(line) => return Some((Input::Line(line), Some(frames))),
                    Frame::TooLong => {
                        shared.close_with(close_code::SIZE, limits::TOO_LONG);
                        return Some((Input::TooLong, None));
                    }
                    Frame::Refused(code, reason) => {
                        shared.close_with(code, reason);
                        return None;
                    }
                    Frame::Pong => shared.ponged.store(true, Ordering::Relaxed),
                    Frame::Nothing => {}
                    Frame::Closed => return None,
                }
            }
        }
    })
}

/// Sends queued lines and pings until the sink is dropped or the browser is
/// gone, then the close frame.
async fn write(
    mut out: SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<String>,
    limits: WebLimits,
    shared: Arc<Shared>,
) {
    let mut pings = interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    loop {
        let message = tokio::select! {
            line = queued.recv() => match line {
                Some(line) => Message::Text(line.into()),
                None => break,
            },
            _ = pings.tick() => {
                let ponged = shared.ponged.swap(false, Ordering::Relaxed);
                if awaiting_pong && !ponged {
                    shared.close_with(close_code::AWAY, "no answer to ping");
                    break;
                }
                awaiting_pong = true;
                Message::Ping(Vec::new().into())
            }
            () = shared.done.cancelled() => break,
        };
        if !matches!(timeout(limits.idle, out.send(message)).await, Ok(Ok(()))) {
            shared.close_with(close_code::AWAY, "the browser took nothing");
            break;
        }
    }
    shared.done.cancel();
    let close = shared
        .close
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| limits::close(close_code::NORMAL, "bye"));
    // A browser that is gone gets one ping period to take the close, not more.
    let _ = timeout(limits.ping_interval, out.send(Message::Close(Some(close)))).await;
}

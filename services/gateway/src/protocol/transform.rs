//! The transform protocol: `UPPER <text>`, `LOWER <text>`, `REVERSE <text>`,
//! each answered with the transformed text on one line.
//!
//! Each text connection carries its lines on one `TransformStream`, opened at
//! its first transform and reopened after an error: the service answers a
//! stream in order, so pipelined lines keep their order for free, and a line
//! costs one message instead of one HTTP/2 call. Transforms have no effects,
//! so requests a broken stream left unanswered (a server draining, a
//! connection past its age) are sent once more on a new stream.
//!
//! Streams are a budget: a server admits a bounded number per HTTP/2
//! connection (1,024 by default). Idle connections keep theirs while the
//! gateway holds fewer than `--max-idle-streams`; past that, a connection
//! gives its stream back as soon as it has nothing in flight.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::StreamExt as _;
use prometheus_client::metrics::gauge::Gauge;
use quartet_client::{Connection, is_connection_failure};
use quartet_proto::transform::v1::{
    Operation, TransformRequest, TransformResponse,
    transform_service_client::TransformServiceClient,
};
use tokio::{
    sync::mpsc,
    time::{Instant, Sleep, sleep_until},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use super::split_command;
use crate::{
    connection::{LineProtocol, Request, Session},
    reply::{Reply, failed, help, quit, unknown},
    upstreams::Upstreams,
};

const COMMANDS: [&str; 5] = [
    "UPPER <text>",
    "LOWER <text>",
    "REVERSE <text>",
    "HELP",
    "QUIT",
];

/// How many times one request is sent before its error is the answer: once,
/// and once more on a new stream if the first broke before answering it.
const MAX_SENDS: u8 = 2;

/// One transform request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What to do.
    pub operation: Operation,
    /// To what: everything after the verb's space, spaces included.
    pub text: String,
}

/// Parses one request line. A missing text is the empty text.
pub fn parse(line: &str) -> Result<Command, Reply> {
    let (verb, text) = split_command(line);
    let operation = match verb.as_str() {
        "UPPER" => Operation::Upper,
        "LOWER" => Operation::Lower,
        "REVERSE" => Operation::Reverse,
        "HELP" => return Err(help(&COMMANDS)),
        "QUIT" => return Err(quit()),
        _ => return Err(unknown(&verb)),
    };
    Ok(Command {
        operation,
        text: text.to_owned(),
    })
}

/// Bridges the transform protocol to the transform service.
#[derive(Debug, Clone)]
pub struct TransformLines {
    upstreams: Upstreams,
    /// Requests one connection may have unanswered (`--max-pipelined`).
    max_pipelined: usize,
    /// Open streams past which idle connections give theirs back.
    max_idle_streams: i64,
    /// Streams open now, across every connection of this listener (exported
    /// as `gateway_transform_streams`).
    open_streams: Gauge,
}

impl TransformLines {
    /// A protocol handler calling `upstreams`; connections may have
    /// `max_pipelined` requests unanswered, and give their stream back when
    /// idle once `open_streams` is above `max_idle_streams`.
    pub fn new(
        upstreams: Upstreams,
        max_pipelined: usize,
        max_idle_streams: usize,
        open_streams: Gauge,
    ) -> Self {
        Self {
            upstreams,
            max_pipelined: max_pipelined.max(1),
            max_idle_streams: i64::try_from(max_idle_streams).unwrap_or(i64::MAX),
            open_streams,
        }
    }
}

impl LineProtocol for TransformLines {
    fn session(&self) -> Box<dyn Session> {
        Box::new(TransformSession {
            lines: self.clone(),
            slots: VecDeque::new(),
            unanswered: 0,
            stream: None,
            closed: false,
            last_progress: Instant::now(),
            deadline: None,
        })
    }
}

/// A request's place in the answer order.
enum Slot {
    /// Answered without the service (`HELP`, an unknown verb, ...).
    Answered(Reply),
    /// Sent on the stream; kept until answered so a broken stream can resend it.
    Sent {
        request: TransformRequest,
        sends: u8,
    },
}

type Opening =
    Pin<Box<dyn Future<Output = Result<Response<Streaming<TransformResponse>>, Status>> + Send>>;

/// One `TransformStream` call.
struct UpstreamStream {
    requests: mpsc::Sender<TransformRequest>,
    answers: Answers,
    /// How long a stream given back may take to end cleanly.
    closing_grace: Duration,
    /// Decrements the open-stream count when the stream goes.
    _counted: Counted,
}

impl Drop for UpstreamStream {
    /// Ends the call cleanly rather than resetting it: the request side closes
    /// with the sender, and the rest of the answers are read to the end on a
    /// task of their own, so the service records a finished call (OK), not a
    /// cancelled one, each time a connection closes or gives its stream back.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Answers::Open(mut answers) = std::mem::replace(&mut self.answers, Answers::Gone) else {
            return;
        };
        let grace = self.closing_grace;
        runtime.spawn(async move {
            let _ = tokio::time::timeout(grace, async {
                while let Some(Ok(_)) = answers.next().await {}
            })
            .await;
        });
    }
}

enum Answers {
    /// Waiting for the service to accept the call (its response headers).
    Opening(Opening),
    /// Boxed: a decoder's state is large, and a session lives as long as its
    /// connection.
    Open(Box<Streaming<TransformResponse>>),
    /// Handed to the task that ends it cleanly.
    Gone,
}

/// One unit of the open-stream count, given back on drop.
struct Counted(Gauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl UpstreamStream {
    /// The next answer on the stream, in request order.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Result<String, Status>> {
        loop {
            match &mut self.answers {
                Answers::Opening(opening) => match opening.as_mut().poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        self.answers = Answers::Open(Box::new(response.into_inner()));
                    }
                    Poll::Ready(Err(status)) => return Poll::Ready(Err(status)),
                    Poll::Pending => return Poll::Pending,
                },
                Answers::Open(answers) => {
                    return answers.poll_next_unpin(cx).map(|answer| match answer {
                        Some(Ok(TransformResponse { text })) => Ok(text),
                        Some(Err(status)) => Err(status),
                        None => Err(Status::unavailable(
                            "the transform service ended the stream",
                        )),
                    });
                }
                Answers::Gone => {
                    return Poll::Ready(Err(Status::unavailable("the stream was closed")));
                }
            }
        }
    }
}

/// One connection's transform requests and their stream.
struct TransformSession {
    lines: TransformLines,
    slots: VecDeque<Slot>,
    /// Slots that are [`Slot::Sent`].
    unanswered: usize,
    /// `None` until the first transform, after an error, or once given back.
    stream: Option<UpstreamStream>,
    closed: bool,
    /// When the stream last answered (or was given work while idle): the
    /// deadline counts from here, so a line costs no timer update.
    last_progress: Instant,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl TransformSession {
    /// Opens a new stream and sends every unanswered request on it, in order.
    fn open_stream(&mut self) {
        let (requests, outgoing) = mpsc::channel(self.lines.max_pipelined);
        let mut client: TransformServiceClient<Connection> = self.lines.upstreams.transform.clone();
        let opening: Opening =
            Box::pin(async move { client.transform_stream(ReceiverStream::new(outgoing)).await });
        self.lines.open_streams.inc();
        let stream = UpstreamStream {
            requests,
            answers: Answers::Opening(opening),
            closing_grace: self.lines.upstreams.timeout,
            _counted: Counted(self.lines.open_streams.clone()),
        };
        for slot in &mut self.slots {
            if let Slot::Sent { request, sends } = slot {
                *sends += 1;
                // The channel holds max_pipelined, and no more requests are
                // ever unanswered; a stream that has died shows it on the
                // answer side, which resends.
                let _ = stream.requests.try_send(request.clone());
            }
        }
        self.stream = Some(stream);
        self.last_progress = Instant::now();
    }

    /// The stream failed with `status` before answering the oldest request.
    /// That request gets the error when the error is its own (not a failure
    /// of the endpoint or the connection) or it was sent enough times; every
    /// other request is sent again on a new stream, unless it too has been
    /// sent enough times.
    fn stream_failed(&mut self, status: &Status) {
        self.stream = None;
        let retry = is_connection_failure(status);
        for (position, slot) in self.slots.iter_mut().enumerate() {
            let Slot::Sent { sends, .. } = slot else {
                continue;
            };
            let oldest = position == 0;
            if *sends >= MAX_SENDS || (oldest && !retry) {
                *slot = Slot::Answered(failed(status));
                self.unanswered -= 1;
            }
        }
        if self.unanswered > 0 {
            self.open_stream();
        }
    }

    /// Every unanswered request fails: the service made no progress in time.
    fn timed_out(&mut self) {
        self.stream = None;
        let status = Status::deadline_exceeded(format!(
            "the transform service did not answer within {}",
            humantime::format_duration(self.lines.upstreams.timeout)
        ));
        for slot in &mut self.slots {
            if matches!(slot, Slot::Sent { .. }) {
                *slot = Slot::Answered(failed(&status));
            }
        }
        self.unanswered = 0;
    }

    /// Whether the stream has gone without progress for the upstream timeout.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.last_progress + self.lines.upstreams.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(sleep_until(due)));
        loop {
            if deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            // The timer is moved only when it fires: progress since it was
            // armed pushes it back.
            let due = self.last_progress + self.lines.upstreams.timeout;
            if due <= Instant::now() {
                return true;
            }
            deadline.as_mut().reset(due);
        }
    }

    /// The answer to the oldest request just came: gives the stream back if
    /// nothing else is in flight and the gateway holds too many.
    fn answered(&mut self) {
        self.unanswered -= 1;
        self.last_progress = Instant::now();
        if self.unanswered == 0 && self.lines.open_streams.get() > self.lines.max_idle_streams {
            // Dropping the sender ends the request side; the service ends its
            // side in turn, freeing the slot on its connection.
            self.stream = None;
        }
    }
}

impl Session for TransformSession {
    fn push(&mut self, request: Request) {
        if self.closed {
            return;
        }
        let parsed = match request {
            Request::Line(line) => parse(&line),
            Request::Answered(reply) => Err(reply),
        };
        let command = match parsed {
            Ok(command) => command,
            Err(reply) => {
                self.closed = reply.closes();
                self.slots.push_back(Slot::Answered(reply));
                return;
            }
        };
        let request = TransformRequest {
            operation: command.operation.into(),
            text: command.text,
        };
        if self.unanswered == 0 {
            // The deadline counts from now, not from the last answer.
            self.last_progress = Instant::now();
        }
        self.unanswered += 1;
        if let Some(stream) = &self.stream {
            let _ = stream.requests.try_send(request.clone());
            self.slots.push_back(Slot::Sent { request, sends: 1 });
        } else {
            // Opening sends every unanswered request, this one included.
            self.slots.push_back(Slot::Sent { request, sends: 0 });
            self.open_stream();
        }
    }

    fn pending(&self) -> usize {
        self.slots.len()
    }

    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Reply> {
        loop {
            match self.slots.front() {
                None => return Poll::Pending,
                Some(Slot::Answered(_)) => {
                    if let Some(Slot::Answered(reply)) = self.slots.pop_front() {
                        return Poll::Ready(reply);
                    }
                }
                Some(Slot::Sent { .. }) => {}
            }
            let Some(stream) = &mut self.stream else {
                // Unreachable in practice: a sent request always has a stream.
                self.open_stream();
                continue;
            };
            match stream.poll_answer(cx) {
                Poll::Ready(Ok(text)) => {
                    self.slots.pop_front();
                    self.answered();
                    return Poll::Ready(Reply::line(text));
                }
                Poll::Ready(Err(status)) => self.stream_failed(&status),
                Poll::Pending => {
                    if !self.poll_deadline(cx) {
                        return Poll::Pending;
                    }
                    self.timed_out();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quartet_proto::transform::v1::Operation;

    use super::{Command, parse};

    #[test]
    fn the_text_is_everything_after_one_space() {
        assert_eq!(
            parse("upper  a b "),
            Ok(Command {
                operation: Operation::Upper,
                text: " a b ".into()
            })
        );
        assert_eq!(
            parse("REVERSE"),
            Ok(Command {
                operation: Operation::Reverse,
                text: String::new()
            })
        );
        assert!(
            parse("SHOUT x")
                .unwrap_err()
                .text()
                .starts_with("ERR INVALID_ARGUMENT unknown command \"SHOUT\"")
        );
    }
}

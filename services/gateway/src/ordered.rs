//! [`OrderedCalls`]: the [`Session`] of a protocol whose commands are unary
//! calls (database, weather), with the ordering rule of docs/protocol.md.
//!
//! On one connection each command sees the effects of every command sent before
//! it: reads with no write between them run concurrently, a write starts only
//! once everything before it has finished, and nothing after a write starts
//! before the write has. Answers always go out in request order. Connections
//! are independent of each other.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{StreamExt as _, stream::FuturesOrdered};

use crate::{
    connection::{LineProtocol, Request, Session},
    reply::Reply,
};

/// Whether a command changes what later commands see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only looks: may run beside other reads.
    Read,
    /// Changes state: runs alone, after everything before it.
    Write,
}

/// An upstream call under way.
pub type Call = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A request/answer protocol whose commands are independent unary calls:
/// parsing is pure, applying calls the service.
pub trait CallProtocol: Send + Sync + 'static {
    /// A parsed request.
    type Command: Send + 'static;

    /// Parses one line: a command to apply, or the answer itself (a usage
    /// error, `HELP`, `QUIT`), which needs no upstream.
    fn parse(&self, line: &str) -> Result<Self::Command, Reply>;

    /// Whether `command` reads or writes.
    fn access(command: &Self::Command) -> Access;

    /// Starts the upstream call that answers `command`.
    fn apply(&self, command: Self::Command) -> Call;
}

/// Serves a [`CallProtocol`]: every connection gets an [`OrderedCalls`].
#[derive(Debug)]
pub struct Calls<P>(pub Arc<P>);

impl<P: CallProtocol> LineProtocol for Calls<P> {
    fn session(&self) -> Box<dyn Session> {
        Box::new(OrderedCalls::new(self.0.clone()))
    }
}

/// A request waiting for its turn.
enum Waiting<C> {
    /// Answered without an upstream; counts as a read (it changes nothing).
    Answered(Reply),
    /// A command to apply.
    Command(C, Access),
}

/// One connection's calls: those running, in request order, and those waiting
/// for the writes before them (or for a write to start).
pub struct OrderedCalls<P: CallProtocol> {
    protocol: Arc<P>,
    running: FuturesOrdered<Call>,
    /// A write is running; it is then the only call running.
    writing: bool,
    waiting: VecDeque<Waiting<P::Command>>,
    /// A reply that closes the connection was taken: later requests are dropped.
    closed: bool,
}

impl<P: CallProtocol> OrderedCalls<P> {
    /// A connection's session, applying commands with `protocol`.
    pub fn new(protocol: Arc<P>) -> Self {
        Self {
            protocol,
            running: FuturesOrdered::new(),
            writing: false,
            waiting: VecDeque::new(),
            closed: false,
        }
    }

    /// Starts every waiting request the ordering rule allows, oldest first.
    ///
    /// Invariant afterwards: if anything waits, something runs (a write waits
    /// only for running calls; a read only for a running write).
    fn start_allowed(&mut self) {
        while let Some(next) = self.waiting.front() {
            let allowed = match next {
                Waiting::Answered(_) | Waiting::Command(_, Access::Read) => !self.writing,
                Waiting::Command(_, Access::Write) => self.running.is_empty(),
            };
            if !allowed {
                return;
            }
            match self.waiting.pop_front() {
                Some(Waiting::Answered(reply)) => {
                    self.running.push_back(Box::pin(std::future::ready(reply)));
                }
                Some(Waiting::Command(command, access)) => {
                    self.writing = access == Access::Write;
                    self.running.push_back(self.protocol.apply(command));
                }
                None => return,
            }
        }
    }
}

impl<P: CallProtocol> Session for OrderedCalls<P> {
    fn push(&mut self, request: Request) {
        if self.closed {
            return;
        }
        let parsed = match request {
            Request::Line(line) => self.protocol.parse(&line),
            Request::Answered(reply) => Err(reply),
        };
        let waiting = match parsed {
            Ok(command) => {
                let access = P::access(&command);
                Waiting::Command(command, access)
            }
            Err(reply) => {
                self.closed = reply.closes();
                Waiting::Answered(reply)
            }
        };
        self.waiting.push_back(waiting);
        self.start_allowed();
    }

    fn pending(&self) -> usize {
        self.running.len() + self.waiting.len()
    }

    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Reply> {
        match self.running.poll_next_unpin(cx) {
            Poll::Ready(Some(reply)) => {
                if self.running.is_empty() {
                    self.writing = false;
                }
                self.start_allowed();
                Poll::Ready(reply)
            }
            // Nothing runs, so nothing waits (see `start_allowed`): the driver
            // polls only while something is pending.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        task::{Context, Poll},
    };

    use futures_util::task::noop_waker_ref;
    use tokio::sync::oneshot;

    use super::{Access, Call, CallProtocol, OrderedCalls};
    use crate::{
        connection::{Request, Session},
        reply::{Reply, quit},
    };

    /// Commands `r<n>` (read) and `w<n>` (write), each answered when the test
    /// releases it; `started` records the order calls were started in.
    #[derive(Default)]
    struct Scripted {
        started: Mutex<Vec<String>>,
        release: Mutex<Vec<(String, oneshot::Sender<()>)>>,
    }

    impl Scripted {
        fn started(&self) -> Vec<String> {
            self.started.lock().unwrap().clone()
        }

        fn finish(&self, name: &str) {
            let mut release = self.release.lock().unwrap();
            let at = release.iter().position(|(n, _)| n == name).unwrap();
            let _ = release.remove(at).1.send(());
        }
    }

    impl CallProtocol for Scripted {
        type Command = String;

        fn parse(&self, line: &str) -> Result<String, Reply> {
            match line {
                "QUIT" => Err(quit()),
                "bad" => Err(Reply::line("ERR bad")),
                _ => Ok(line.to_owned()),
            }
        }

        fn access(command: &String) -> Access {
            if command.starts_with('w') {
                Access::Write
            } else {
                Access::Read
            }
        }

        fn apply(&self, command: String) -> Call {
            self.started.lock().unwrap().push(command.clone());
            let (done, wait) = oneshot::channel();
            self.release.lock().unwrap().push((command.clone(), done));
            Box::pin(async move {
                let _ = wait.await;
                Reply::line(command)
            })
        }
    }

    fn session(script: &Arc<Scripted>, lines: &[&str]) -> OrderedCalls<Scripted> {
        let mut session = OrderedCalls::new(script.clone());
        for line in lines {
            session.push(Request::Line((*line).to_owned()));
        }
        session
    }

    fn poll(session: &mut OrderedCalls<Scripted>) -> Option<String> {
        match session.poll_reply(&mut Context::from_waker(noop_waker_ref())) {
            Poll::Ready(reply) => Some(reply.text().to_owned()),
            Poll::Pending => None,
        }
    }

    #[test]
    fn reads_run_together_and_a_write_waits_for_them() {
        let script = Arc::new(Scripted::default());
        let mut calls = session(&script, &["r1", "r2", "w3", "r4"]);
        assert_eq!(script.started(), ["r1", "r2"]);

        // r2 finishing first changes nothing: answers and the write keep order.
        script.finish("r2");
        assert_eq!(poll(&mut calls), None);
        assert_eq!(script.started(), ["r1", "r2"]);
        script.finish("r1");
        assert_eq!(poll(&mut calls).as_deref(), Some("r1"));
        assert_eq!(script.started(), ["r1", "r2"]);
        assert_eq!(poll(&mut calls).as_deref(), Some("r2"));
        assert_eq!(
            script.started(),
            ["r1", "r2", "w3"],
            "the write starts last"
        );

        // The read after the write waits for it.
        assert_eq!(poll(&mut calls), None);
        script.finish("w3");
        assert_eq!(poll(&mut calls).as_deref(), Some("w3"));
        assert_eq!(script.started(), ["r1", "r2", "w3", "r4"]);
        script.finish("r4");
        assert_eq!(poll(&mut calls).as_deref(), Some("r4"));
        assert_eq!(calls.pending(), 0);
    }

    #[test]
    fn writes_run_one_at_a_time_with_local_answers_in_their_place() {
        let script = Arc::new(Scripted::default());
        let mut calls = session(&script, &["w1", "bad", "w2"]);
        assert_eq!(script.started(), ["w1"]);
        script.finish("w1");
        assert_eq!(poll(&mut calls).as_deref(), Some("w1"));
        assert_eq!(poll(&mut calls).as_deref(), Some("ERR bad"));
        assert_eq!(script.started(), ["w1", "w2"]);
        script.finish("w2");
        assert_eq!(poll(&mut calls).as_deref(), Some("w2"));
    }

    #[test]
    fn nothing_after_quit_is_started_or_answered() {
        let script = Arc::new(Scripted::default());
        let mut calls = session(&script, &["r1", "QUIT", "w2", "r3"]);
        assert_eq!(calls.pending(), 2);
        script.finish("r1");
        assert_eq!(poll(&mut calls).as_deref(), Some("r1"));
        assert_eq!(poll(&mut calls).as_deref(), Some("OK bye"));
        assert_eq!(script.started(), ["r1"]);
        assert_eq!(calls.pending(), 0);
    }
}

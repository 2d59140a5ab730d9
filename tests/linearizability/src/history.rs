//! What a test records: one [`Operation`] per call, timed on one [`Clock`].

use std::{
    fmt,
    time::{Duration, Instant},
};

/// The one monotonic clock of a history: every client stamps its calls with
/// the time since the same origin, so that "returned before invoked" means the
/// same thing for all of them.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The time since the origin.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// The call answered `output` at `at`.
    Returned {
        /// The answer, success or a definite refusal alike.
        output: O,
        /// When the answer reached the client.
        at: Duration,
    },
    /// The call failed without a definite answer (the connection broke, the
    /// deadline passed): it may have taken effect at any instant after its
    /// invocation, or never.
    Unknown,
}

/// One recorded call: who made it, what it asked, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that made the call; reports name it, the check ignores it
    /// (a client whose call had an unknown outcome may go on calling while
    /// that call is still in flight somewhere).
    pub client: usize,
    /// What was asked.
    pub input: I,
    /// When the call was sent (read just before sending).
    pub invoked: Duration,
    /// How it ended (the time read just after the answer arrived).
    pub outcome: Outcome<O>,
}

impl<I, O> Operation<I, O> {
    /// A call that answered `output`.
    pub fn returned(client: usize, input: I, invoked: Duration, output: O, at: Duration) -> Self {
        Self {
            client,
            input,
            invoked,
            outcome: Outcome::Returned { output, at },
        }
    }

    /// A call whose outcome is unknown.
    pub fn unknown(client: usize, input: I, invoked: Duration) -> Self {
        Self {
            client,
            input,
            invoked,
            outcome: Outcome::Unknown,
        }
    }

    /// The answer, `None` when the outcome is unknown.
    pub fn output(&self) -> Option<&O> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Unknown => None,
        }
    }

    /// When the answer arrived; `None` (never) when the outcome is unknown.
    pub fn returned_at(&self) -> Option<Duration> {
        match &self.outcome {
            Outcome::Returned { at, .. } => Some(*at),
            Outcome::Unknown => None,
        }
    }
}

fn millis(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

/// One line: `[  12.301 ms ..   13.020 ms] client 3: <input> -> <output>`.
impl<I: fmt::Display, O: fmt::Display> fmt::Display for Operation<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let invoked = millis(self.invoked);
        match &self.outcome {
            Outcome::Returned { output, at } => write!(
                f,
                "[{invoked:10.3} ms .. {:10.3} ms] client {:2}: {} -> {output}",
                millis(*at),
                self.client,
                self.input
            ),
            Outcome::Unknown => write!(
                f,
                "[{invoked:10.3} ms ..          ? ms] client {:2}: {} -> unknown outcome",
                self.client, self.input
            ),
        }
    }
}

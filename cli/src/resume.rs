//! The one resume policy of every stream the CLI watches (`db watch`,
//! `weather watch`, `chat`): which failures are transient, and how long to wait
//! before the next attempt (exponential backoff with jitter, capped).
//!
//! A command keeps only what is its own: where it resumes from, what it tells
//! the user while it waits, and a case only it has (chat's nick, still held by
//! its previous session right after a reconnect).

use std::{
    hash::{BuildHasher as _, RandomState},
    time::Duration,
};

use quartet_client::is_connection_failure;
use tonic::{Code, Status, Streaming};

/// First wait before the next attempt; each failed attempt doubles it, up to
/// [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// Longest wait between attempts: a server that comes back after a long
/// outage is found within this.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(5);

/// Whether a stream that failed with `status` is worth opening again: the
/// server or the path to it went away (a restart, a drain, overload, a broken
/// connection), as opposed to a request the server will never accept. An
/// UNKNOWN or INTERNAL counts only when this client made it from a lost
/// connection; one the server sent (a broken observations file, say) would
/// come back on every attempt.
pub(crate) fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
    ) || is_connection_failure(status)
}

/// The next message of a watched stream, or the status it ended with. Servers
/// end watches only with a status, so a bare end is a lost connection:
/// UNAVAILABLE.
pub(crate) async fn next_message<T>(stream: &mut Streaming<T>) -> Result<T, Status> {
    match stream.message().await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(Status::unavailable("the server ended the stream")),
        Err(status) => Err(status),
    }
}

/// Waits between attempts to reopen one stream. The jitter keeps a fleet of
/// watchers from coming back to a restarted server in lockstep.
#[derive(Debug)]
pub(crate) struct Resume {
    /// The step of the next wait, before jitter.
    step: Duration,
}

impl Resume {
    /// A policy whose first wait is [`FIRST_WAIT`].
    pub(crate) fn new() -> Self {
        Self { step: FIRST_WAIT }
    }

    /// The stream is delivering again: the next failure waits the first step.
    pub(crate) fn reset(&mut self) {
        self.step = FIRST_WAIT;
    }

    /// After a failure: the wait before the next attempt when the failure is
    /// transient; `None` when it is not, and the command ends with it.
    pub(crate) fn wait_after(&mut self, status: &Status) -> Option<Duration> {
        is_transient(status).then(|| self.next_wait())
    }

    /// After a failure: tells the user with `tell(status, wait)` and waits,
    /// when the failure is transient; gives `status` back at once when not.
    pub(crate) async fn pause_after(
        &mut self,
        status: Status,
        tell: impl FnOnce(&Status, Duration),
    ) -> Result<(), Status> {
        let Some(wait) = self.wait_after(&status) else {
            return Err(status);
        };
        tell(&status, wait);
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The wait before the next attempt, for a failure the caller knows to be
    /// transient: half to all of the current step; the step then doubles, up
    /// to [`MAX_WAIT`].
    pub(crate) fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(MAX_WAIT);
        jittered(step, random_per_mille())
    }
}

/// Half of `step`, plus `per_mille` thousandths of the other half, in whole
/// milliseconds (what the user is told is what happens).
fn jittered(step: Duration, per_mille: u32) -> Duration {
    let half = step / 2;
    let wait = half + half * per_mille.min(1000) / 1000;
    Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// A random number from 0 to 1000: the standard library's randomly keyed
/// hasher is random enough to spread a fleet, and needs no RNG crate.
fn random_per_mille() -> u32 {
    u32::try_from(RandomState::new().hash_one(0_u8) % 1001).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_going_away_is_transient_and_a_refused_request_is_not() {
        use Code::*;
        let server_or_path = [
            Unavailable,
            Cancelled,
            DeadlineExceeded,
            ResourceExhausted,
            Aborted,
        ];
        let request = [
            // Sent by the server (no transport error under it): the same
            // request would get it again.
            Unknown,
            Internal,
            InvalidArgument,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            FailedPrecondition,
            OutOfRange,
            Unimplemented,
            DataLoss,
            Unauthenticated,
        ];
        for code in server_or_path {
            assert!(is_transient(&Status::new(code, "")), "{code:?}");
        }
        for code in request {
            assert!(!is_transient(&Status::new(code, "")), "{code:?}");
        }
        // An UNKNOWN this client made from a lost connection is transient.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_transient(&Status::from_error(Box::new(reset))));
    }

    #[test]
    fn a_refused_request_gets_no_wait() {
        let mut resume = Resume::new();
        assert_eq!(resume.wait_after(&Status::not_found("atlantis")), None);
        // Nor did it use up a step.
        assert!(resume.next_wait() <= FIRST_WAIT);
    }

    #[test]
    fn jitter_spreads_each_wait_over_the_second_half_of_its_step() {
        let step = Duration::from_millis(400);
        assert_eq!(jittered(step, 0), step / 2);
        assert_eq!(jittered(step, 500), step * 3 / 4);
        assert_eq!(jittered(step, 1000), step);
        assert_eq!(jittered(step, u32::MAX), step, "never past the step");
        assert_eq!(
            jittered(Duration::from_millis(101), 999).subsec_nanos() % 1_000_000,
            0
        );
        assert!((0..100).all(|_| random_per_mille() <= 1000));
    }

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut resume = Resume::new();
        let mut step = FIRST_WAIT;
        for _ in 0..10 {
            let wait = resume.next_wait();
            assert!(wait >= step / 2 && wait <= step, "{wait:?} for {step:?}");
            step = (step * 2).min(MAX_WAIT);
        }
        assert_eq!(step, MAX_WAIT, "ten failures reach the cap");
        resume.reset();
        assert!(resume.next_wait() <= FIRST_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_tells_the_wait_then_waits_it() {
        let mut resume = Resume::new();
        let started = tokio::time::Instant::now();
        let mut told = None;
        let paused = resume
            .pause_after(Status::unavailable("draining"), |status, wait| {
                told = Some((status.code(), wait));
            })
            .await;
        assert!(paused.is_ok());
        let (code, wait) = told.unwrap();
        assert_eq!(code, Code::Unavailable);
        assert_eq!(started.elapsed(), wait);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_ends_at_once_untold() {
        let mut resume = Resume::new();
        let started = tokio::time::Instant::now();
        let refused = resume
            .pause_after(Status::invalid_argument("interval"), |_, _| {
                panic!("nothing to tell")
            })
            .await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_back_after_an_outage_is_found_within_the_cap() {
        // A watcher retrying for a minute: every attempt within MAX_WAIT of
        // the one before, and no busy loop (at most one attempt per
        // FIRST_WAIT / 2).
        let outage = Duration::from_secs(60);
        let started = tokio::time::Instant::now();
        let mut resume = Resume::new();
        let mut attempts = 0_u32;
        let mut last = started;
        while started.elapsed() < outage {
            resume
                .pause_after(Status::unavailable("connection refused"), |_, _| {})
                .await
                .unwrap();
            assert!(last.elapsed() <= MAX_WAIT);
            last = tokio::time::Instant::now();
            attempts += 1;
        }
        let busiest = u32::try_from(outage.as_millis() / (FIRST_WAIT / 2).as_millis()).unwrap();
        assert!(attempts >= 12 && attempts < busiest, "{attempts} attempts");
    }
}

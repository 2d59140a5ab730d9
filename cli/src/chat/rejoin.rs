//! When and how chat rejoins after its stream broke: the CLI's resume policy,
//! plus the one case only chat has, and a pause during which the member can
//! still type (lines wait in the backlog) or leave.

use std::time::Duration;

use tokio::{sync::mpsc, time::Instant};
use tonic::{Code, Status};

use super::{
    input::{INPUT_QUEUE, Input},
    progress::Progress,
    screen::Screen,
};
use crate::resume::Resume;

/// How long ALREADY_EXISTS stays transient after a rejoin was first refused:
/// the server may not have noticed our previous stream's end yet (over NATS, a
/// crashed replica's claim on the nick lives 30s).
const NICK_RELEASE_WAIT: Duration = Duration::from_secs(40);

/// When to try joining again after a rejoin failed: [`Resume`], plus chat's
/// own case. Right after a reconnect our nick may still be held by our
/// previous, dying session, so ALREADY_EXISTS is transient for a while; past
/// that, someone else has the nick.
pub(super) struct Rejoin {
    resume: Resume,
    /// When a rejoin was first refused because the nick is taken.
    nick_refused_since: Option<Instant>,
}

impl Rejoin {
    pub(super) fn new() -> Self {
        Self {
            resume: Resume::new(),
            nick_refused_since: None,
        }
    }

    /// A join worked: the next failure starts over.
    pub(super) fn joined(&mut self) {
        self.resume.reset();
        self.nick_refused_since = None;
    }

    /// The pause before the next rejoin after one failed with `status`;
    /// `None` when it is not worth another.
    pub(super) fn wait_after(&mut self, status: &Status) -> Option<Duration> {
        if status.code() != Code::AlreadyExists {
            return self.resume.wait_after(status);
        }
        let refused_since = *self.nick_refused_since.get_or_insert_with(Instant::now);
        (refused_since.elapsed() <= NICK_RELEASE_WAIT).then(|| self.resume.next_wait())
    }
}

/// Sleeps `pause` before the next rejoin while still listening to the member:
/// lines go to the backlog, and leaving ends the wait (returns true).
pub(super) async fn wait_to_retry(
    pause: Duration,
    input: &mut mpsc::Receiver<Input>,
    progress: &mut Progress,
    screen: &Screen,
) -> anyhow::Result<bool> {
    let until = Instant::now() + pause;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Ok(false),
            typed = input.recv() => match typed {
                Some(Input::Say(text)) => {
                    if progress.backlog.len() >= INPUT_QUEUE
                        && let Some(dropped) = progress.backlog.pop_front()
                    {
                        screen
                            .note(&format!("* not connected; dropped the line {dropped:?}"))
                            .await?;
                    }
                    progress.backlog.push_back(text);
                }
                Some(Input::Leave) | None => return Ok(true),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::MAX_WAIT;

    /// A second short of the nick's wait.
    fn almost() -> Duration {
        NICK_RELEASE_WAIT
            .checked_sub(Duration::from_secs(1))
            .unwrap()
    }

    fn taken() -> Status {
        Status::already_exists("nick ana is taken")
    }

    #[tokio::test(start_paused = true)]
    async fn a_nick_still_held_is_waited_for_then_taken_as_someone_elses() {
        let mut rejoin = Rejoin::new();
        assert!(rejoin.wait_after(&taken()).is_some());
        tokio::time::advance(almost()).await;
        let wait = rejoin.wait_after(&taken()).unwrap();
        assert!(wait <= MAX_WAIT, "the policy's backoff: {wait:?}");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(rejoin.wait_after(&taken()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_join_that_works_gives_the_nick_its_full_wait_again() {
        let mut rejoin = Rejoin::new();
        assert!(rejoin.wait_after(&taken()).is_some());
        tokio::time::advance(almost()).await;
        rejoin.joined();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(rejoin.wait_after(&taken()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_follow_the_cli_policy() {
        let mut rejoin = Rejoin::new();
        assert!(
            rejoin
                .wait_after(&Status::unavailable("connection refused"))
                .is_some()
        );
        // Whatever the nick wait, a failure the policy calls final is final.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(rejoin.wait_after(&Status::unavailable("again")).is_some());
        assert_eq!(
            rejoin.wait_after(&Status::invalid_argument("bad nick")),
            None
        );
        assert_eq!(rejoin.wait_after(&Status::not_found("no room")), None);
    }
}

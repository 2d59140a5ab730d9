//! [`Chatter`]: a person saying numbered lines at a steady pace through
//! whatever happens, and the [`Outcomes`] of its lines.

use std::time::Duration;

use tokio::{
    sync::watch,
    task::JoinHandle,
    time::{Instant, timeout},
};

use crate::{
    member::DEADLINE,
    person::{Outcome, Person},
};

/// Between a chatter's lines: steady talk, far below the rate limit and the
/// retention, so every line stays in history for the final checks.
const PACE: Duration = Duration::from_millis(40);

/// A chatter's lines: when it started saying each, and when and what it was
/// told (`None` while it waits to learn).
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcomes(pub(crate) Vec<(Instant, Option<(Instant, Outcome)>)>);

impl Outcomes {
    /// Whether the latest line is waiting for its fate.
    pub(crate) fn in_flight(&self) -> bool {
        self.0.last().is_some_and(|(_, told)| told.is_none())
    }

    /// Whether some line was being said at `at` or later: started then, or
    /// not yet settled, or settled then.
    pub(crate) fn said_since(&self, at: Instant) -> bool {
        self.0
            .iter()
            .any(|(said, told)| *said >= at || told.as_ref().is_none_or(|(when, _)| *when >= at))
    }

    /// Lines started since `since` that came back.
    pub(crate) fn acked_after(&self, since: Instant) -> usize {
        self.0
            .iter()
            .filter(|(said, told)| {
                *said >= since && told.as_ref().is_some_and(|(_, outcome)| outcome.is_acked())
            })
            .count()
    }
}

/// A person saying numbered lines at a steady pace, through whatever
/// happens: when its session ends it rejoins and goes on.
pub(crate) struct Chatter {
    pub(crate) task: JoinHandle<Person>,
    pub(crate) outcomes: watch::Receiver<Outcomes>,
}

impl Chatter {
    pub(crate) fn start(mut person: Person, stop: watch::Receiver<bool>) -> Self {
        let (report, outcomes) = watch::channel(Outcomes::default());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PACE);
            for n in 1.. {
                ticks.tick().await;
                if *stop.borrow() {
                    break;
                }
                if !person.current().is_open() {
                    person.rejoin(DEADLINE).await;
                }
                let text = format!("{} {n}", person.nick);
                report.send_modify(|o| o.0.push((Instant::now(), None)));
                let outcome = person.say(&text).await.clone();
                report.send_modify(|o| {
                    if let Some((_, told)) = o.0.last_mut() {
                        *told = Some((Instant::now(), outcome));
                    }
                });
            }
            person
        });
        Self { task, outcomes }
    }

    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        done: impl FnMut(&Outcomes) -> bool,
    ) {
        let waited = timeout(within, self.outcomes.wait_for(done))
            .await
            .is_ok_and(|watched| watched.is_ok());
        assert!(
            waited,
            "{what}: not within {within:?}; {:?}",
            *self.outcomes.borrow()
        );
    }

    pub(crate) async fn stop(self) -> Person {
        timeout(DEADLINE, self.task).await.unwrap().unwrap()
    }
}

//! Concurrent clients that record what they asked and what they saw, for the
//! linearizability checker: each call's invocation and response times on one
//! clock, and its answer, or an unknown outcome when the call failed without
//! one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::{collections::HashMap, time::Duration};

use quartet_linearizability::{
    Answer, Budget, Call, Clock, Operation, PeopleRegister, Record, Verdict, check,
};
use quartet_proto::database::v1::{
    CreatePersonRequest, DeletePersonRequest, GetPersonRequest, Person, UpdatePersonRequest,
    people_service_client::PeopleServiceClient,
};
use tokio::{
    sync::watch,
    task::JoinSet,
    time::{Instant, timeout},
};
use tonic::{Code, Status, transport::Channel};

/// One recorded call.
pub(crate) type Recorded = Operation<Call, Answer>;

/// Concurrent clients; each has a connection of its own.
pub(crate) const CLIENTS: usize = 16;
/// The ids every client works on: few, so that clients collide often.
pub(crate) const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Calls per run, all clients together (a run stops within one call per client
/// of reaching it).
pub(crate) const CALLS: usize = 400;
/// A call that takes longer has an unknown outcome.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client whose call failed waits for the server to come back before
/// it calls again anyway (as a client with back-off would).
const BACKOFF: Duration = Duration::from_secs(1);
/// Every run finishes well within this.
pub(crate) const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The shared state of a run: one clock, the progress the controller watches,
/// and the signals it sends back.
#[derive(Clone)]
pub(crate) struct Run {
    clock: Clock,
    /// Calls made so far, all clients together.
    progress: watch::Sender<usize>,
    /// Set when the clients should stop.
    stop: watch::Sender<bool>,
    /// Bumped every time the server is back after a crash: a client whose call
    /// failed waits for it rather than hammering a dead port.
    restarts: watch::Sender<u32>,
}

impl Run {
    pub(crate) fn new() -> Self {
        Self {
            clock: Clock::start(),
            progress: watch::channel(0).0,
            stop: watch::channel(false).0,
            restarts: watch::channel(0).0,
        }
    }

    /// Waits until the clients have made `calls` calls.
    pub(crate) async fn reached(&self, calls: usize) {
        let mut progress = self.progress.subscribe();
        timeout(RUN_DEADLINE, progress.wait_for(|made| *made >= calls))
            .await
            .expect("the clients stalled")
            .unwrap();
    }

    /// Tells the clients the server is back, and returns when that was.
    pub(crate) fn restarted(&self) -> Duration {
        self.restarts.send_modify(|restarts| *restarts += 1);
        self.clock.now()
    }

    /// Tells the clients to stop after their current call.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// A connection of its own to `url`, made on the first call and remade after
/// the server comes back.
pub(crate) fn connect(url: &str) -> PeopleServiceClient<Channel> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    PeopleServiceClient::new(channel)
}

/// A small deterministic generator (splitmix64): each client's calls follow
/// from its seed, without a dependency for it.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }
}

/// One client: chooses calls, makes them, and keeps what happened.
struct Client {
    id: usize,
    people: PeopleServiceClient<Channel>,
    dice: Dice,
    /// The last version this client saw of each id: what its conditional
    /// writes expect (often stale by the time they arrive, on purpose).
    seen: HashMap<String, u64>,
    /// Names written so far; makes every name in a run unique.
    written: usize,
    history: Vec<Recorded>,
}

impl Client {
    fn choose(&mut self) -> Call {
        #[allow(clippy::cast_possible_truncation)] // below(4) < 4
        let id = KEYS[self.dice.below(KEYS.len() as u64) as usize].to_owned();
        let expected = self.seen.get(&id).copied().unwrap_or(1);
        // 30% reads, 46% updates (a third of them conditional), 14% creates,
        // 10% deletes (most conditional): the ids come and go, but are
        // mostly there.
        let roll = self.dice.below(100);
        if roll < 30 {
            return Call::Get { id };
        }
        if roll >= 90 {
            let expected_version = (roll < 96).then_some(expected);
            return Call::Delete {
                id,
                expected_version,
            };
        }
        self.written += 1;
        let name = format!("c{:02}-{:03}", self.id, self.written);
        match roll {
            30..60 => Call::Update {
                id,
                name,
                expected_version: None,
            },
            60..76 => Call::Update {
                id,
                name,
                expected_version: Some(expected),
            },
            _ => Call::Create { id, name },
        }
    }

    async fn send(&mut self, call: &Call) -> Result<Answer, Status> {
        let person = |id: &str, name: &str| Person {
            id: id.into(),
            name: name.into(),
            ..Person::default()
        };
        let stored = match call.clone() {
            Call::Create { id, name } => self
                .people
                .create_person(CreatePersonRequest {
                    person: Some(person(&id, &name)),
                })
                .await
                .map(|answer| Some(answer.into_inner())),
            Call::Get { id } => self
                .people
                .get_person(GetPersonRequest { id })
                .await
                .map(|answer| Some(answer.into_inner())),
            Call::Update {
                id,
                name,
                expected_version,
            } => self
                .people
                .update_person(UpdatePersonRequest {
                    person: Some(person(&id, &name)),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["name".into()],
                    }),
                    expected_version,
                })
                .await
                .map(|answer| Some(answer.into_inner())),
            Call::Delete {
                id,
                expected_version,
            } => self
                .people
                .delete_person(DeletePersonRequest {
                    id,
                    expected_version,
                })
                .await
                .map(|answer| answer.into_inner().person),
        };
        match stored {
            Ok(Some(person)) => Ok(Answer::Record(Record::new(person.version, person.name))),
            Ok(None) => panic!("{call}: an answer without the person"),
            Err(status) => match status.code() {
                Code::NotFound => Ok(Answer::NotFound),
                Code::AlreadyExists => Ok(Answer::AlreadyExists),
                Code::FailedPrecondition => Ok(Answer::VersionMismatch),
                _ => Err(status),
            },
        }
    }

    /// Makes one call and records it; `false` when its outcome is unknown.
    async fn call(&mut self, clock: Clock) -> bool {
        let call = self.choose();
        let invoked = clock.now();
        let answer = self.send(&call).await;
        let at = clock.now();
        match answer {
            Ok(answer) => {
                match (&call, &answer) {
                    (Call::Delete { .. }, Answer::Record(_)) | (_, Answer::NotFound) => {
                        self.seen.remove(call.id());
                    }
                    (_, Answer::Record(record)) => {
                        self.seen.insert(call.id().to_owned(), record.version);
                    }
                    (_, Answer::AlreadyExists | Answer::VersionMismatch) => {}
                }
                self.history
                    .push(Operation::returned(self.id, call, invoked, answer, at));
                true
            }
            // The call may or may not have happened: a connection lost to a
            // crash, a deadline. UNKNOWN and INTERNAL are how tonic reports an
            // HTTP/2 connection that broke mid-call.
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Cancelled
                        | Code::Unknown
                        | Code::Internal
                ) =>
            {
                self.history
                    .push(Operation::unknown(self.id, call, invoked));
                false
            }
            Err(status) => panic!("{call}: unexpected {status:?}"),
        }
    }

    /// Calls until the run stops.
    async fn run(mut self, run: Run) -> Vec<Recorded> {
        let stop = run.stop.subscribe();
        let mut restarts = run.restarts.subscribe();
        while !*stop.borrow() {
            let generation = *restarts.borrow_and_update();
            let known = self.call(run.clock).await;
            run.progress.send_modify(|made| *made += 1);
            if !known {
                let _ = timeout(BACKOFF, restarts.wait_for(|now| *now > generation)).await;
            }
        }
        self.history
    }
}

/// Starts [`CLIENTS`] recording clients, client `i` on `urls[i % urls.len()]`.
pub(crate) fn start_clients(run: &Run, urls: &[String], seed: u64) -> JoinSet<Vec<Recorded>> {
    let mut clients = JoinSet::new();
    for id in 0..CLIENTS {
        let client = Client {
            id,
            people: connect(&urls[id % urls.len()]),
            dice: Dice(seed ^ (id as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            seen: HashMap::new(),
            written: 0,
            history: Vec::new(),
        };
        clients.spawn(client.run(run.clone()));
    }
    clients
}

/// Waits for the clients, then reads every id once more through `url` (so the
/// history ends with what the store holds), and returns the whole history in
/// invocation order.
pub(crate) async fn finish(run: &Run, clients: JoinSet<Vec<Recorded>>, url: &str) -> Vec<Recorded> {
    let mut history: Vec<Recorded> = timeout(RUN_DEADLINE, clients.join_all())
        .await
        .expect("clients hung")
        .into_iter()
        .flatten()
        .collect();
    let mut auditor = Client {
        id: CLIENTS,
        people: connect(url),
        dice: Dice(0),
        seen: HashMap::new(),
        written: 0,
        history: Vec::new(),
    };
    for id in KEYS {
        let call = Call::Get { id: id.into() };
        let invoked = run.clock.now();
        let answer = auditor.send(&call).await.expect("the final read failed");
        let at = run.clock.now();
        history.push(Operation::returned(CLIENTS, call, invoked, answer, at));
    }
    history.sort_by_key(|operation| operation.invoked);
    history
}

/// What a history holds, for the test's report and its assertions.
pub(crate) struct Tally {
    pub(crate) calls: usize,
    pub(crate) unknown: usize,
    pub(crate) writes_ok: usize,
    pub(crate) span: Duration,
}

pub(crate) fn tally(history: &[Recorded]) -> Tally {
    let unknown = history.iter().filter(|op| op.output().is_none()).count();
    let writes_ok = history
        .iter()
        .filter(|op| {
            !matches!(op.input, Call::Get { .. }) && matches!(op.output(), Some(Answer::Record(_)))
        })
        .count();
    let first = history
        .iter()
        .map(|op| op.invoked)
        .min()
        .unwrap_or_default();
    let last = history
        .iter()
        .filter_map(Operation::returned_at)
        .max()
        .unwrap_or_default();
    Tally {
        calls: history.len(),
        unknown,
        writes_ok,
        span: last.saturating_sub(first),
    }
}

/// Checks `history` against the people register and reports on stderr what
/// was checked and how long it took.
pub(crate) fn check_history(name: &str, history: &[Recorded]) -> Verdict<PeopleRegister> {
    let tally = tally(history);
    let started = Instant::now();
    let verdict = check(&PeopleRegister, history, Budget::default()).unwrap();
    eprintln!(
        "{name}: {} calls ({} successful writes, {} unknown outcomes) over {:.2?}; checked in {:.2?}: {}",
        tally.calls,
        tally.writes_ok,
        tally.unknown,
        tally.span,
        started.elapsed(),
        match &verdict {
            Verdict::Linearizable { keys, steps } =>
                format!("linearizable ({keys} keys, {steps} search steps)"),
            Verdict::NotLinearizable(violation) => format!("NOT linearizable\n{violation}"),
            Verdict::GaveUp { key, steps, .. } => format!("gave up on {key:?} after {steps} steps"),
        }
    );
    verdict
}

/// Asserts the history linearizable; a checker that gave up fails the test
/// too, and so does a history that says little (mostly unknown outcomes, or
/// hardly a write that took).
pub(crate) fn assert_linearizable(name: &str, history: &[Recorded]) {
    let verdict = check_history(name, history);
    assert!(verdict.is_linearizable(), "{name}: {verdict:?}");
    let tally = tally(history);
    assert!(
        tally.unknown * 10 <= tally.calls,
        "{name}: {} of {} outcomes unknown",
        tally.unknown,
        tally.calls
    );
    assert!(
        tally.writes_ok * 10 >= tally.calls,
        "{name}: only {} of {} calls were writes that took",
        tally.writes_ok,
        tally.calls
    );
}

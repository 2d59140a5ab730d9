//! Power loss under the embedded store. `kill -9` leaves the page cache behind,
//! so it cannot tell a store that fsyncs from one that does not; here a
//! simulated disk under redb drops everything that was not synced (and tears
//! the writes in flight), the store is reopened from what survived, and every
//! write acknowledged before the power went must be there.
//!
//! # Layout
//! - `disk`: the simulated disk ([`disk::SimulatedDisk`]) and what a power loss
//!   keeps ([`disk::CrashModel`]).
//! - `workload`: random writes sent through `PeopleStore`, and their answers.
//! - `oracle`: what must hold after the restart, given those answers.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod disk;
mod oracle;
mod workload;

use std::{sync::Arc, time::Duration};

use disk::{CrashModel, SimulatedDisk, Syncs};
use oracle::Recovered;
use proptest::{
    prelude::*,
    strategy::ValueTree as _,
    test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner},
};
use quartet_database::{
    DatabaseError, PeopleStore, StoreBackend as _,
    listing::ListQuery,
    person::{NewPerson, PersonFields},
    store::redb::RedbBackend,
};
use tokio::time::timeout;
use tokio_stream::StreamExt as _;
use workload::Wave;

/// Cases of the property; each runs a workload, a crash and a restart.
const CASES: u32 = 1000;
/// Crash points are drawn below this many disk operations after the store is
/// open. A workload takes 6 to 60 (a commit is a header write, a few page
/// writes and one sync; measured by `workloads_end_within_the_crash_points`),
/// so about half the cases lose power mid-way and the rest after the last
/// answer.
const CRASH_POINTS: u64 = 48;
/// Crash points of a second outage, during the restart's recovery: reopening
/// a store that lost power takes about 13 operations.
const RESTART_CRASH_POINTS: u64 = 16;
/// Far more than a workload writes: the change log is never trimmed here.
const RETENTION: u64 = 10_000;
/// Bounds each step of a case, so that a hang fails rather than stalls.
const DEADLINE: Duration = Duration::from_secs(10);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The promise itself: whatever the workload and wherever the power goes,
    /// every acknowledged write survives and the feed stays whole.
    #[test]
    fn acknowledged_writes_survive_power_loss(
        waves in workload::waves(),
        outage in outage(CRASH_POINTS),
        restart_outage in proptest::option::weighted(0.25, outage(RESTART_CRASH_POINTS)),
    ) {
        let verdict =
            runtime().block_on(lose_power(&waves, outage, restart_outage, Syncs::Honest));
        verdict.map_err(TestCaseError::fail)?;
    }
}

/// The check is only worth something if it fails when durability is gone. A
/// disk whose fsync returns without flushing does what `Durability::None`
/// would (no acknowledged write is ever on the platter): the property must
/// find a counterexample on it, and the counterexample must be a lost
/// acknowledged write.
#[test]
fn a_disk_that_ignores_fsync_loses_acknowledged_writes() {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(
        &(workload::waves(), outage(CRASH_POINTS)),
        |(waves, outage)| {
            let verdict = runtime().block_on(lose_power(&waves, outage, None, Syncs::Lying));
            verdict.map_err(TestCaseError::fail)
        },
    );
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            println!("counterexample: {minimal:?}\n{reason}");
            assert!(
                reason.message().contains("lost an acknowledged write"),
                "{reason}"
            );
        }
        other => panic!("a disk that ignores fsync went unnoticed: {other:?}"),
    }
}

/// The crash points reach past the end of typical workloads, so that the
/// property also cuts the power after the last answer.
#[test]
fn workloads_end_within_the_crash_points() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut operations = Vec::new();
    for _ in 0..32 {
        let waves = workload::waves().new_tree(&mut runner).unwrap().current();
        operations.push(runtime().block_on(count_operations(&waves)));
    }
    operations.sort_unstable();
    println!("disk operations per workload: {operations:?}");
    let median = operations[operations.len() / 2];
    assert!(
        median > 0 && median < CRASH_POINTS,
        "median {median} operations; crash points stop at {CRASH_POINTS}"
    );
}

/// Where the power goes, and what survives.
#[derive(Debug, Clone)]
struct Outage {
    /// Disk operations (writes, resizes, syncs) that succeed first.
    after: u64,
    /// What survives of the writes not yet synced.
    model: CrashModel,
}

/// An outage after fewer than `points` operations.
fn outage(points: u64) -> impl Strategy<Value = Outage> {
    (0..points, disk::crash_model()).prop_map(|(after, model)| Outage { after, model })
}

/// A runtime per case, on one thread: the writes of a wave reach the queue
/// before the writer takes them, so they share a batch (the commits still run
/// on the blocking pool).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `waves` on a fresh store whose disk suffers `outage` (or loses power
/// after the last answer), restarts on what survived (suffering
/// `restart_outage` during the restart's recovery, then restarting again, if
/// given), and checks the store against the answers.
async fn lose_power(
    waves: &[Wave],
    outage: Outage,
    restart_outage: Option<Outage>,
    syncs: Syncs,
) -> Result<(), String> {
    let disk = SimulatedDisk::new(syncs);
    let (store, _) = open(disk.clone()).await.unwrap();
    disk.arm(outage.after, outage.model);
    let outcomes = timeout(DEADLINE, workload::run(&store, waves))
        .await
        .expect("the workload hung");
    drop(store);
    let mut image = disk.pull_plug();
    if let Some(outage) = restart_outage {
        let disk = SimulatedDisk::from_image(image);
        disk.arm(outage.after, outage.model);
        // Whether the restart got through or not, what it left must do.
        drop(open(disk.clone()).await);
        image = disk.pull_plug();
    }
    let recovered = reopen(image).await?;
    oracle::check(&workload::writes(waves), &outcomes, &recovered)
}

/// How many disk operations `waves` takes, without a crash.
async fn count_operations(waves: &[Wave]) -> u64 {
    let disk = SimulatedDisk::new(Syncs::Honest);
    let (store, _) = open(disk.clone()).await.unwrap();
    disk.arm(u64::MAX, CrashModel::DropUnsynced);
    workload::run(&store, waves).await;
    disk.operations()
}

async fn open(disk: SimulatedDisk) -> Result<(PeopleStore, Arc<RedbBackend>), DatabaseError> {
    let backend = Arc::new(RedbBackend::with_storage(disk, RETENTION)?);
    let store = PeopleStore::new(backend.clone()).await?;
    Ok((store, backend))
}

/// Restarts on `image` and reads what the store holds: its records, its
/// revision and its change log. The store must also take a new write, at the
/// next revision, and a watch from revision 0 must deliver the log and then
/// that write, exactly.
async fn reopen(image: Vec<u8>) -> Result<Recovered, String> {
    let failed =
        |what: &str, error: DatabaseError| format!("after the power loss, {what}: {error}");
    let (store, backend) = open(SimulatedDisk::from_image(image))
        .await
        .map_err(|error| failed("the store does not open", error))?;
    let page = store
        .list(&ListQuery {
            prefix: String::new(),
            after: None,
            limit: 1000,
        })
        .await
        .map_err(|error| failed("listing fails", error))?;
    let next = store
        .create(a_person_after_the_restart())
        .await
        .map_err(|error| failed("a new write fails", error))?;
    if next.revision != page.revision + 1 {
        return Err(format!(
            "the first write after the restart got revision {}, not {}",
            next.revision,
            page.revision + 1
        ));
    }
    let mut log = backend
        .changes_after(0, usize::MAX)
        .await
        .map_err(|error| failed("reading the log fails", error))?;
    if log.last() != Some(&next) {
        return Err(format!(
            "the log does not end with the first write after the restart, {next:?}, \
             but with {:?}",
            log.last()
        ));
    }
    let mut feed = store
        .watch(Some(0), String::new())
        .await
        .map_err(|error| failed("a watch from 0 fails", error))?;
    for expected in &log {
        let delivered = timeout(DEADLINE, feed.next()).await;
        if !matches!(&delivered, Ok(Some(Ok(change))) if **change == *expected) {
            return Err(format!(
                "a watch from revision 0 delivered {delivered:?} where {expected:?} was due"
            ));
        }
    }
    log.pop();
    Ok(Recovered {
        revision: page.revision,
        people: page
            .people
            .into_iter()
            .map(|person| (person.id.clone(), person))
            .collect(),
        changes: log,
    })
}

fn a_person_after_the_restart() -> NewPerson {
    let fields = PersonFields {
        name: "after the restart".into(),
        email: None,
        age: None,
    };
    NewPerson::new("after".into(), fields).unwrap()
}

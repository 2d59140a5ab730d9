//! Hand-written histories of the people register, each with the verdict a
//! reader can check on paper, and the witness a violation must shrink to.

// Tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use quartet_linearizability::{
    Answer, Budget, Call, HistoryError, Operation, PeopleRegister, Record, RegisterState, Verdict,
    check,
};

type Op = Operation<Call, Answer>;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn done(client: usize, call: Call, from: u64, to: u64, answer: Answer) -> Op {
    Operation::returned(client, call, ms(from), answer, ms(to))
}

fn unknown(client: usize, call: Call, from: u64) -> Op {
    Operation::unknown(client, call, ms(from))
}

fn create(id: &str, name: &str) -> Call {
    Call::Create {
        id: id.into(),
        name: name.into(),
    }
}

fn get(id: &str) -> Call {
    Call::Get { id: id.into() }
}

fn update(id: &str, name: &str, expected_version: Option<u64>) -> Call {
    Call::Update {
        id: id.into(),
        name: name.into(),
        expected_version,
    }
}

fn delete(id: &str, expected_version: Option<u64>) -> Call {
    Call::Delete {
        id: id.into(),
        expected_version,
    }
}

fn record(version: u64, name: &str) -> Answer {
    Answer::Record(Record::new(version, name))
}

fn verdict(history: &[Op]) -> Verdict<PeopleRegister> {
    check(&PeopleRegister, history, Budget::default()).unwrap()
}

fn assert_linearizable(history: &[Op]) {
    let verdict = verdict(history);
    assert!(verdict.is_linearizable(), "{verdict:?}");
}

/// Asserts the history fails and shrinks to exactly `witness`.
fn assert_witness(history: &[Op], key: &str, witness: &[&Op]) {
    let verdict = verdict(history);
    let violation = verdict.violation().expect("not linearizable");
    assert_eq!(violation.key, key);
    assert!(violation.minimal, "{violation}");
    let expected: Vec<Op> = witness.iter().map(|&op| op.clone()).collect();
    assert_eq!(violation.witness, expected, "{violation}");
}

#[test]
fn a_sequential_history_of_every_call_is_linearizable() {
    assert_linearizable(&[
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        done(0, create("p1", "x"), 2, 3, Answer::AlreadyExists),
        done(1, get("p1"), 4, 5, record(1, "a")),
        done(1, update("p1", "b", None), 6, 7, record(2, "b")),
        done(0, update("p1", "c", Some(1)), 8, 9, Answer::VersionMismatch),
        done(0, update("p1", "c", Some(2)), 10, 11, record(3, "c")),
        done(1, delete("p1", Some(2)), 12, 13, Answer::VersionMismatch),
        done(1, delete("p1", Some(3)), 14, 15, record(3, "c")),
        done(0, get("p1"), 16, 17, Answer::NotFound),
        done(0, update("p1", "d", None), 18, 19, Answer::NotFound),
        done(1, delete("p1", None), 20, 21, Answer::NotFound),
        // After a delete the id starts over at version 1.
        done(1, create("p1", "e"), 22, 23, record(1, "e")),
    ]);
}

#[test]
fn reads_concurrent_with_an_update_may_see_either_side() {
    assert_linearizable(&[
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        done(0, update("p1", "b", None), 10, 50, record(2, "b")),
        done(1, get("p1"), 12, 14, record(1, "a")),
        done(2, get("p1"), 15, 60, record(2, "b")),
        done(1, get("p1"), 20, 22, record(2, "b")),
    ]);
}

#[test]
fn calls_that_touch_at_one_instant_count_as_concurrent() {
    assert_linearizable(&[
        done(0, create("p1", "a"), 0, 10, record(1, "a")),
        done(1, get("p1"), 10, 12, Answer::NotFound),
    ]);
}

#[test]
fn a_stale_read_after_an_acknowledged_update_is_caught() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let updated = done(0, update("p1", "b", None), 2, 3, record(2, "b"));
    let stale = done(1, get("p1"), 4, 5, record(1, "a"));
    assert_witness(
        &[created, updated.clone(), stale.clone()],
        "p1",
        &[&updated, &stale],
    );
}

#[test]
fn a_read_that_goes_back_in_time_during_an_update_is_caught() {
    // Both reads overlap the update, but the second began after the first saw
    // the new name: it cannot see the old one again.
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let updating = done(0, update("p1", "b", None), 10, 100, record(2, "b"));
    let new = done(1, get("p1"), 20, 30, record(2, "b"));
    let old = done(2, get("p1"), 40, 50, record(1, "a"));
    assert_witness(
        &[created, updating, new.clone(), old.clone()],
        "p1",
        &[&new, &old],
    );
}

#[test]
fn a_version_given_to_two_updates_is_caught() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    // Concurrent, yet both cannot have started from version 1: a lost update.
    let first = done(1, update("p1", "b", None), 2, 10, record(2, "b"));
    let second = done(2, update("p1", "c", None), 3, 11, record(2, "c"));
    assert_witness(
        &[created, first.clone(), second.clone()],
        "p1",
        &[&first, &second],
    );
}

#[test]
fn a_version_seen_twice_by_readers_is_caught() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let updated = done(0, update("p1", "b", None), 2, 3, record(2, "b"));
    let read = done(1, get("p1"), 4, 5, record(2, "b"));
    let overwritten = done(2, update("p1", "c", None), 6, 7, record(3, "c"));
    let reread = done(1, get("p1"), 8, 9, record(2, "b"));
    assert_witness(
        &[created, updated, read, overwritten.clone(), reread.clone()],
        "p1",
        &[&overwritten, &reread],
    );
}

#[test]
fn a_delete_that_un_happens_is_caught() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let deleted = done(0, delete("p1", None), 2, 3, record(1, "a"));
    let back = done(1, get("p1"), 4, 5, record(1, "a"));
    assert_witness(
        &[created, deleted.clone(), back.clone()],
        "p1",
        &[&deleted, &back],
    );
}

#[test]
fn a_conditional_update_refused_at_the_version_it_named_is_caught() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let refused = done(1, update("p1", "b", Some(1)), 2, 3, Answer::VersionMismatch);
    let verdict = verdict(&[created.clone(), refused.clone()]);
    let violation = verdict.violation().expect("not linearizable");
    // A refusal alone fits some state; it takes the create to contradict it.
    assert_eq!(violation.witness, vec![created, refused]);
    assert_eq!(violation.from, RegisterState::Any);
}

#[test]
fn a_create_refused_on_an_empty_id_is_caught() {
    let refused = done(0, create("p1", "a"), 0, 1, Answer::AlreadyExists);
    let verdict = verdict(std::slice::from_ref(&refused));
    let violation = verdict.violation().expect("not linearizable");
    // It fits a state where p1 exists: it fails only from the initial state.
    assert_eq!(violation.witness, vec![refused]);
    assert_eq!(violation.from, RegisterState::Absent);
}

#[test]
fn an_update_with_an_unknown_outcome_may_take_effect_late_or_never() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let lost = unknown(0, update("p1", "b", None), 2);
    // Not yet, then taken effect long after its client gave up on it.
    assert_linearizable(&[
        created.clone(),
        lost.clone(),
        done(1, get("p1"), 10, 11, record(1, "a")),
        done(1, get("p1"), 100, 101, record(2, "b")),
    ]);
    // Never.
    assert_linearizable(&[
        created.clone(),
        lost.clone(),
        done(1, get("p1"), 100, 101, record(1, "a")),
    ]);
    // But once seen, it cannot be undone.
    let seen = done(1, get("p1"), 10, 11, record(2, "b"));
    let undone = done(1, get("p1"), 12, 13, record(1, "a"));
    assert_witness(
        &[created, lost.clone(), seen.clone(), undone.clone()],
        "p1",
        &[&seen, &undone],
    );
}

#[test]
fn a_call_with_an_unknown_outcome_cannot_act_before_it_was_sent() {
    let created = done(0, create("p1", "a"), 0, 1, record(1, "a"));
    let early = done(1, get("p1"), 2, 3, record(2, "b"));
    let lost = unknown(0, update("p1", "b", None), 5);
    let verdict = verdict(&[created, early, lost]);
    assert!(verdict.violation().is_some(), "{verdict:?}");
}

#[test]
fn reads_with_unknown_outcomes_are_left_out() {
    let verdict = verdict(&[
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        unknown(1, get("p1"), 2),
        unknown(2, get("p1"), 3),
    ]);
    assert!(
        matches!(verdict, Verdict::Linearizable { keys: 1, .. }),
        "{verdict:?}"
    );
}

#[test]
fn keys_are_checked_apart_and_the_failing_one_is_named() {
    let stale = done(1, get("p2"), 8, 9, record(1, "x"));
    let rewritten = done(0, update("p2", "y", None), 6, 7, record(2, "y"));
    let verdict = verdict(&[
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        done(0, create("p2", "x"), 2, 3, record(1, "x")),
        done(1, get("p1"), 4, 5, record(1, "a")),
        rewritten.clone(),
        stale.clone(),
        done(1, get("p1"), 10, 11, record(1, "a")),
    ]);
    let violation = verdict.violation().expect("not linearizable");
    assert_eq!(violation.key, "p2");
    assert_eq!(violation.operations, 3);
    assert_eq!(violation.witness, vec![rewritten, stale]);
    let report = violation.to_string();
    assert!(report.contains("get p2 -> v1 \"x\""), "{report}");
}

#[test]
fn a_search_past_its_budget_gives_up_rather_than_answering() {
    // Many concurrent updates with unknown outcomes and a read that none of
    // them explains: every subset and order is tried before the search fails.
    let mut history = vec![done(0, create("p1", "a"), 0, 1, record(1, "a"))];
    for client in 1..=12 {
        let name = format!("n{client}");
        history.push(unknown(client, update("p1", &name, None), 2));
    }
    history.push(done(0, get("p1"), 10, 11, record(99, "nobody")));
    let tight = Budget {
        steps_per_key: 1000,
        shrink_steps: 1000,
    };
    let verdict = check(&PeopleRegister, &history, tight).unwrap();
    assert!(
        matches!(&verdict, Verdict::GaveUp { key, operations: 14, steps: 1000 } if key == "p1"),
        "{verdict:?}"
    );
    // With room to finish, the same search proves it.
    let verdict = check(&PeopleRegister, &history, Budget::default()).unwrap();
    let violation = verdict.violation().expect("not linearizable");
    assert_eq!(
        violation.witness,
        vec![history[0].clone(), history[13].clone()],
        "{violation}"
    );
}

#[test]
fn a_response_before_its_invocation_is_refused() {
    let history = [
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        done(0, get("p1"), 5, 4, record(1, "a")),
    ];
    let error = check(&PeopleRegister, &history, Budget::default()).unwrap_err();
    assert_eq!(error, HistoryError::ReturnedBeforeInvoked { index: 1 });
}

#[test]
fn a_witness_never_blames_calls_that_fail_only_without_the_writes_around_them() {
    // Without the delete, "get -> v1" then "update -> NOT_FOUND" would fail
    // too; a witness made by deleting calls could blame them. The stale read
    // at the end is the real fault.
    let innocent = done(3, update("p1", "b", None), 6, 7, Answer::NotFound);
    let recreated = done(0, create("p1", "x"), 8, 9, record(1, "x"));
    let stale = done(1, get("p1"), 10, 11, record(1, "a"));
    let history = [
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        done(1, get("p1"), 2, 3, record(1, "a")),
        done(2, delete("p1", None), 4, 5, record(1, "a")),
        innocent.clone(),
        recreated.clone(),
        stale.clone(),
    ];
    assert_witness(&history, "p1", &[&recreated, &stale]);
    let verdict = verdict(&history);
    let violation = verdict.violation().unwrap();
    assert_eq!(violation.from, RegisterState::Any);
    assert!(!violation.witness.contains(&innocent));
}

#[test]
fn writes_in_flight_around_a_failure_stay_as_possibilities() {
    let updated = done(1, update("p1", "b", None), 2, 3, record(2, "b"));
    let in_flight = done(2, update("p1", "c", None), 3, 20, record(3, "c"));
    let stale = done(0, get("p1"), 4, 5, record(1, "a"));
    let history = [
        done(0, create("p1", "a"), 0, 1, record(1, "a")),
        updated.clone(),
        in_flight.clone(),
        stale.clone(),
    ];
    let verdict = verdict(&history);
    let violation = verdict.violation().expect("not linearizable");
    assert_eq!(violation.witness, vec![updated.clone(), stale.clone()]);
    assert_eq!(violation.context, vec![in_flight.clone()]);
    assert_eq!(
        violation.proof(),
        vec![updated, unknown(2, update("p1", "c", None), 3), stale]
    );
    let report = violation.to_string();
    assert!(
        report.contains("even if each of these may have taken effect"),
        "{report}"
    );
}

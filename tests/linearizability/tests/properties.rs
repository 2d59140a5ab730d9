//! Properties of the checker on generated histories of the people register:
//! what a correct register produces always passes, the verdict agrees with a
//! brute-force enumeration of orders, and a witness is a minimal failure.

// Tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use proptest::prelude::*;
use quartet_linearizability::{
    Answer, Budget, Call, Model, Operation, PeopleRegister, Record, RegisterState, Verdict, check,
};

type Op = Operation<Call, Answer>;

/// What happens to a planned call.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// It takes effect at its point and its client hears the answer.
    Answered,
    /// It takes effect at its point but its client never hears.
    Lost,
    /// It never reaches the store.
    Dropped,
}

/// A call of a generated run: what, how long after the previous call's point
/// it takes effect, how far its interval reaches either side, and its fate.
#[derive(Debug, Clone)]
struct Planned {
    call: Call,
    gap: u64,
    before: u64,
    after: u64,
    fate: Fate,
}

fn call(
    ids: &'static [&'static str],
    names: &'static [&'static str],
) -> impl Strategy<Value = Call> {
    let id = proptest::sample::select(ids).prop_map(str::to_owned);
    let name = proptest::sample::select(names).prop_map(str::to_owned);
    let expected = proptest::option::of(1_u64..4);
    prop_oneof![
        (id.clone(), name.clone()).prop_map(|(id, name)| Call::Create { id, name }),
        id.clone().prop_map(|id| Call::Get { id }),
        (id.clone(), name, expected.clone()).prop_map(|(id, name, expected_version)| {
            Call::Update {
                id,
                name,
                expected_version,
            }
        }),
        (id, expected).prop_map(|(id, expected_version)| Call::Delete {
            id,
            expected_version
        }),
    ]
}

fn planned(
    ids: &'static [&'static str],
    names: &'static [&'static str],
) -> impl Strategy<Value = Planned> {
    let fate = prop_oneof![
        6 => Just(Fate::Answered),
        1 => Just(Fate::Lost),
        1 => Just(Fate::Dropped),
    ];
    (call(ids, names), 0_u64..5, 0_u64..15, 0_u64..15, fate).prop_map(
        |(call, gap, before, after, fate)| Planned {
            call,
            gap,
            before,
            after,
            fate,
        },
    )
}

/// The contract, written again independently of the model under test.
fn reference(call: &Call, stored: &mut Option<Record>) -> Answer {
    match call {
        Call::Create { name, .. } => {
            if stored.is_some() {
                return Answer::AlreadyExists;
            }
            *stored = Some(Record::new(1, name.clone()));
            Answer::Record(Record::new(1, name.clone()))
        }
        Call::Get { .. } => stored.clone().map_or(Answer::NotFound, Answer::Record),
        Call::Update {
            name,
            expected_version,
            ..
        } => match stored {
            None => Answer::NotFound,
            Some(record) if expected_version.is_some_and(|v| v != record.version) => {
                Answer::VersionMismatch
            }
            Some(record) => {
                *record = Record::new(record.version + 1, name.clone());
                Answer::Record(record.clone())
            }
        },
        Call::Delete {
            expected_version, ..
        } => match stored.take() {
            None => Answer::NotFound,
            Some(record) if expected_version.is_some_and(|v| v != record.version) => {
                *stored = Some(record);
                Answer::VersionMismatch
            }
            Some(record) => Answer::Record(record),
        },
    }
}

/// Runs the plan on a correct register: each call takes effect at its own
/// point, inside its interval, in plan order.
fn run(plan: &[Planned]) -> Vec<Op> {
    let mut stored: BTreeMap<String, Option<Record>> = BTreeMap::new();
    let mut point = 20;
    let mut history = Vec::new();
    for (client, planned) in plan.iter().enumerate() {
        point += planned.gap;
        let invoked = Duration::from_millis(point - planned.before);
        let record = stored.entry(planned.call.id().to_owned()).or_default();
        let operation = match planned.fate {
            Fate::Answered => {
                let answer = reference(&planned.call, record);
                let at = Duration::from_millis(point + planned.after);
                Operation::returned(client, planned.call.clone(), invoked, answer, at)
            }
            Fate::Lost => {
                reference(&planned.call, record);
                Operation::unknown(client, planned.call.clone(), invoked)
            }
            Fate::Dropped => Operation::unknown(client, planned.call.clone(), invoked),
        };
        history.push(operation);
    }
    history
}

/// Every order that respects real time, tried one by one.
fn brute_force(history: &[Op]) -> bool {
    fn extend(history: &[Op], left: &mut Vec<usize>, state: &RegisterState) -> bool {
        if left.iter().all(|&i| history[i].output().is_none()) {
            return true;
        }
        for position in 0..left.len() {
            let i = left[position];
            let must_wait = left.iter().any(|&j| {
                history[j]
                    .returned_at()
                    .is_some_and(|at| at < history[i].invoked)
            });
            if must_wait {
                continue;
            }
            let Some(next) = PeopleRegister.step(state, &history[i].input, history[i].output())
            else {
                continue;
            };
            left.remove(position);
            let found = extend(history, left, &next);
            left.insert(position, i);
            if found {
                return true;
            }
        }
        false
    }
    extend(
        history,
        &mut (0..history.len()).collect(),
        &RegisterState::Absent,
    )
}

/// The people register, starting from a chosen state: to re-check a witness
/// from the state it was reported to fail from.
struct StartingAt(RegisterState);

impl Model for StartingAt {
    type Key = String;
    type Input = Call;
    type Output = Answer;
    type State = RegisterState;

    fn key(&self, input: &Call) -> String {
        PeopleRegister.key(input)
    }

    fn init(&self) -> RegisterState {
        self.0.clone()
    }

    fn step(
        &self,
        state: &RegisterState,
        input: &Call,
        output: Option<&Answer>,
    ) -> Option<RegisterState> {
        PeopleRegister.step(state, input, output)
    }

    fn has_no_effect(&self, input: &Call, output: Option<&Answer>) -> bool {
        PeopleRegister.has_no_effect(input, output)
    }
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        (1_u64..4, proptest::sample::select(&["a", "b"][..]))
            .prop_map(|(version, name)| Answer::Record(Record::new(version, name))),
        Just(Answer::NotFound),
        Just(Answer::AlreadyExists),
        Just(Answer::VersionMismatch),
    ]
}

proptest! {
    #[test]
    fn what_a_correct_register_does_is_linearizable(
        plan in proptest::collection::vec(planned(&["p1", "p2"], &["a", "b", "c"]), 1..40)
    ) {
        let history = run(&plan);
        let verdict = check(&PeopleRegister, &history, Budget::default()).unwrap();
        prop_assert!(verdict.is_linearizable(), "{verdict:?}");
    }

    #[test]
    fn the_verdict_agrees_with_trying_every_order(
        plan in proptest::collection::vec(planned(&["p1"], &["a", "b"]), 1..7),
        corruption in proptest::option::of((any::<proptest::sample::Index>(), answer())),
    ) {
        let mut history = run(&plan);
        if let Some((index, answer)) = corruption {
            let operation = &mut history[index.index(plan.len())];
            if let quartet_linearizability::Outcome::Returned { output, .. } = &mut operation.outcome {
                *output = answer;
            }
        }
        let verdict = check(&PeopleRegister, &history, Budget::default()).unwrap();
        prop_assert_eq!(verdict.is_linearizable(), brute_force(&history), "{:?}", verdict);

        if let Verdict::NotLinearizable(violation) = verdict {
            prop_assert!(violation.minimal);
            for operation in violation.witness.iter().chain(&violation.context) {
                prop_assert!(history.contains(operation));
            }
            // The proof fails on its own, from the state it names...
            let from = StartingAt(violation.from.clone());
            let proof = violation.proof();
            let again = check(&from, &proof, Budget::default()).unwrap();
            prop_assert!(again.violation().is_some(), "the proof passes: {:?}", again);
            // ...and needs every answer of the witness.
            for needed in &violation.witness {
                let weaker: Vec<Op> = proof
                    .iter()
                    .filter(|operation| *operation != needed)
                    .cloned()
                    .chain(std::iter::once(Operation::unknown(
                        needed.client,
                        needed.input.clone(),
                        needed.invoked,
                    )))
                    .collect();
                let verdict = check(&from, &weaker, Budget::default()).unwrap();
                prop_assert!(verdict.is_linearizable(), "not minimal: {:?}", verdict);
            }
        }
    }
}

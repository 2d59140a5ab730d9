//! [`check()`]: split a history by key, search each key's calls, and shrink
//! the first key that fails to a small sub-history that still fails.

use std::{collections::BTreeMap, fmt};

use crate::{
    history::Operation,
    model::{Model, OperationOf},
    search::{Found, search},
    shrink::shrink,
};

/// How much work a check may do before it answers [`Verdict::GaveUp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Search steps per key (one step tries one call at one point).
    pub steps_per_key: u64,
    /// Search steps for shrinking a violation, all attempts together; when
    /// they run out the sub-history found so far is reported, not minimal.
    pub shrink_steps: u64,
}

impl Default for Budget {
    /// A few seconds of a debug build at worst; histories of a few hundred
    /// calls per key with a handful of unknown outcomes take a small fraction.
    fn default() -> Self {
        Self {
            steps_per_key: 2_000_000,
            shrink_steps: 5_000_000,
        }
    }
}

/// A history no clock could have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A call answered before it was invoked.
    #[error("operation {index} returned before it was invoked")]
    ReturnedBeforeInvoked {
        /// Its position in the history.
        index: usize,
    },
}

/// The answer of [`check()`].
pub enum Verdict<M: Model> {
    /// Some order of the calls explains every answer.
    Linearizable {
        /// Keys checked.
        keys: usize,
        /// Search steps taken over all keys.
        steps: u64,
    },
    /// No order does, for at least this key.
    NotLinearizable(Violation<M>),
    /// The search of this key ran out of budget; no other key failed.
    GaveUp {
        /// The key.
        key: M::Key,
        /// Its calls.
        operations: usize,
        /// The steps spent on it.
        steps: u64,
    },
}

/// A key whose calls no order explains, and a small part of them that no
/// order explains either.
///
/// The proof is [`proof`](Self::proof): the [`witness`](Self::witness) calls
/// with their answers, and the [`context`](Self::context) calls as if their
/// outcomes were unknown, from [`from`](Self::from). It is what is left of the
/// key's calls after only ever cutting to a window of time, leaving out reads
/// and refused writes, and forgetting answers: each of those only allows more
/// orders, so the proof failing means the whole history fails. (Deleting a
/// write would not be sound: a history can fail only because a write that
/// explained some answer was taken out.)
pub struct Violation<M: Model> {
    /// The key.
    pub key: M::Key,
    /// How many calls the key had (after leaving out reads with unknown
    /// outcomes).
    pub operations: usize,
    /// The calls whose answers no order explains together, in invocation
    /// order. When [`minimal`](Self::minimal), forgetting any one of their
    /// answers makes the proof linearizable.
    pub witness: Vec<OperationOf<M>>,
    /// Writes the proof keeps as possibilities only, in invocation order: each
    /// may have taken effect at any instant after its invocation, or never.
    /// Shown with the answers they had, which the proof does not use.
    pub context: Vec<OperationOf<M>>,
    /// The state the proof starts from: the model's unconstrained state when
    /// the window opens after the history began, else the initial state.
    pub from: M::State,
    /// Whether shrinking finished; `false` when a search ran out of budget.
    pub minimal: bool,
}

impl<M: Model> Violation<M> {
    /// The history that fails from [`from`](Self::from): the witness, and the
    /// context with unknown outcomes, in invocation order.
    pub fn proof(&self) -> Vec<OperationOf<M>> {
        let mut proof = self.witness.clone();
        proof.extend(self.context.iter().map(|operation| {
            Operation::unknown(operation.client, operation.input.clone(), operation.invoked)
        }));
        proof.sort_by_key(|operation| operation.invoked);
        proof
    }
}

impl<M: Model> fmt::Display for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the {} calls on {:?} are not linearizable; from {:?}, no order explains {} {} answers:",
            self.operations,
            self.key,
            self.from,
            if self.minimal {
                "these"
            } else {
                "(not shrunk to the end) these"
            },
            self.witness.len(),
        )?;
        for operation in &self.witness {
            writeln!(f, "  {operation}")?;
        }
        if !self.context.is_empty() {
            writeln!(
                f,
                "even if each of these may have taken effect at any time after its invocation, or never:"
            )?;
            for operation in &self.context {
                writeln!(f, "  {operation}")?;
            }
        }
        Ok(())
    }
}

impl<M: Model> fmt::Debug for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<M: Model> fmt::Debug for Verdict<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Linearizable { keys, steps } => f
                .debug_struct("Linearizable")
                .field("keys", keys)
                .field("steps", steps)
                .finish(),
            Self::NotLinearizable(violation) => {
                f.debug_tuple("NotLinearizable").field(violation).finish()
            }
            Self::GaveUp {
                key,
                operations,
                steps,
            } => f
                .debug_struct("GaveUp")
                .field("key", key)
                .field("operations", operations)
                .field("steps", steps)
                .finish(),
        }
    }
}

impl<M: Model> Verdict<M> {
    /// Whether the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable { .. })
    }

    /// The violation, if one was found.
    pub fn violation(&self) -> Option<&Violation<M>> {
        match self {
            Self::NotLinearizable(violation) => Some(violation),
            _ => None,
        }
    }
}

/// Checks whether `history` is linearizable with respect to `model`, within
/// `budget`.
pub fn check<M: Model>(
    model: &M,
    history: &[OperationOf<M>],
    budget: Budget,
) -> Result<Verdict<M>, HistoryError> {
    let mut keys: BTreeMap<M::Key, Vec<&OperationOf<M>>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        if operation
            .returned_at()
            .is_some_and(|at| at < operation.invoked)
        {
            return Err(HistoryError::ReturnedBeforeInvoked { index });
        }
        if operation.output().is_none() && model.has_no_effect(&operation.input, None) {
            continue;
        }
        keys.entry(model.key(&operation.input))
            .or_default()
            .push(operation);
    }

    let mut total_steps = 0;
    let mut gave_up = None;
    for (key, calls) in &mut keys {
        // Shrinking works in invocation order.
        calls.sort_by_key(|operation| operation.invoked);
        let (found, steps) = search(model, calls, model.init(), budget.steps_per_key);
        total_steps += steps;
        match found {
            Found::Linearizable => {}
            Found::Illegal => {
                return Ok(Verdict::NotLinearizable(shrink(
                    model,
                    key.clone(),
                    calls,
                    budget,
                )));
            }
            Found::GaveUp => {
                gave_up.get_or_insert((key.clone(), calls.len(), steps));
            }
        }
    }
    Ok(match gave_up {
        Some((key, operations, steps)) => Verdict::GaveUp {
            key,
            operations,
            steps,
        },
        None => Verdict::Linearizable {
            keys: keys.len(),
            steps: total_steps,
        },
    })
}

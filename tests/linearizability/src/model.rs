//! The sequential specification a history is checked against.

use std::{fmt, hash::Hash};

use crate::history::Operation;

/// A recorded call on `M`.
pub type OperationOf<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// A sequential object: its states, and what each call does to a state and
/// may answer. Calls on different keys never affect each other, so each key's
/// calls are checked on their own (the search is exponential in the calls of
/// one key, not of the whole history).
///
/// The model must be deterministic given the input: a call with an unknown
/// outcome moves the state to the one its input leads to.
pub trait Model {
    /// What partitions a history: calls on different keys are independent.
    type Key: Ord + Clone + fmt::Debug;
    /// What a call asks.
    type Input: Clone + fmt::Display;
    /// What a call answers, success or a definite refusal.
    type Output: Clone + fmt::Display;
    /// The state of one key; remembered by the search, so keep it small.
    type State: Clone + Eq + Hash + fmt::Debug;

    /// The key `input` acts on.
    fn key(&self, input: &Self::Input) -> Self::Key;

    /// Every key's state before the history starts.
    fn init(&self) -> Self::State;

    /// The state after `input` is applied to `state`, if it could have
    /// answered `output` there; `None` when it could not. `output` is `None`
    /// when the outcome is unknown: any answer goes.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// A state that stands for every state, if the model has one: [`step`]
    /// from it accepts whatever some concrete state would accept. It lets a
    /// violation be shrunk to a window of time that fails whatever the state
    /// was when the window opened, rather than only to a prefix of the
    /// history. `None` (the default) shrinks prefixes only.
    ///
    /// [`step`]: Model::step
    fn unconstrained(&self) -> Option<Self::State> {
        None
    }

    /// Whether a call that answered `output` (`None`: unknown) certainly left
    /// the state as it was: a read, or a refused write. Such a call with an
    /// unknown outcome tells nothing and is left out of the search, and a
    /// witness may leave it out (it only ever rules orders out).
    fn has_no_effect(&self, input: &Self::Input, output: Option<&Self::Output>) -> bool {
        let _ = (input, output);
        false
    }
}

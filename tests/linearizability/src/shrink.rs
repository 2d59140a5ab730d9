//! Shrinking a key's failing calls to a small proof, by steps that each only
//! allow more orders (so what still fails proves the whole history fails):
//!
//! 1. the shortest prefix of time `..=end` that fails: calls answered by `end`
//!    keep their answers, calls still in flight at `end` forget theirs (their
//!    outcome becomes unknown), calls sent after `end` go (every call kept
//!    ended before they began, so they can only come after);
//! 2. the latest start of a window `start..=end` that still fails from the
//!    model's unconstrained state: calls answered before `start` go (their
//!    effect is part of whatever the state was), calls in flight at `start`
//!    forget their answers;
//! 3. inside the window, one call at a time: a call that changed nothing (a
//!    read, a refused write) goes, any other forgets its answer, as long as
//!    what is left still fails.
//!
//! Each search is bounded like the check's; one that gives up counts as "does
//! not fail" and marks the result as not minimal.

use std::time::Duration;

use crate::{
    check::{Budget, Violation},
    history::Operation,
    model::{Model, OperationOf},
    search::{Found, search},
};

/// What a candidate does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Its answer counts.
    Keep,
    /// Its outcome counts as unknown.
    Forget,
    /// It is left out.
    Drop,
}

struct Shrinker<'a, M: Model> {
    model: &'a M,
    /// The key's calls, in invocation order.
    calls: &'a [&'a OperationOf<M>],
    budget: Budget,
    spent: u64,
    gave_up: bool,
}

impl<M: Model> Shrinker<'_, M> {
    /// The calls a candidate keeps, each with whether it forgets its answer.
    /// Forgotten calls that changed nothing (by their answer, or whatever
    /// it was), or that were sent after every kept answer arrived, go too:
    /// they cannot explain anything.
    fn candidate(&self, treatments: &[Treatment]) -> Vec<(usize, bool)> {
        let last_answer = self
            .calls
            .iter()
            .zip(treatments)
            .filter(|(_, treatment)| **treatment == Treatment::Keep)
            .filter_map(|(call, _)| call.returned_at())
            .max();
        let mut kept = Vec::new();
        for (index, (call, treatment)) in self.calls.iter().zip(treatments).enumerate() {
            match treatment {
                Treatment::Keep => kept.push((index, false)),
                Treatment::Forget
                    if !self.model.has_no_effect(&call.input, call.output())
                        && last_answer.is_some_and(|last| call.invoked <= last) =>
                {
                    kept.push((index, true));
                }
                Treatment::Forget | Treatment::Drop => {}
            }
        }
        kept
    }

    /// Whether the candidate is proven to fail from `from`.
    fn fails(&mut self, treatments: &[Treatment], from: &M::State) -> bool {
        let left = self.budget.shrink_steps.saturating_sub(self.spent);
        if left == 0 {
            self.gave_up = true;
            return false;
        }
        let operations: Vec<OperationOf<M>> = self
            .candidate(treatments)
            .into_iter()
            .map(|(index, forgotten)| {
                let call = self.calls[index];
                if forgotten {
                    Operation::unknown(call.client, call.input.clone(), call.invoked)
                } else {
                    call.clone()
                }
            })
            .collect();
        let references: Vec<&OperationOf<M>> = operations.iter().collect();
        let (found, steps) = search(
            self.model,
            &references,
            from.clone(),
            left.min(self.budget.steps_per_key),
        );
        self.spent += steps;
        if found == Found::GaveUp {
            self.gave_up = true;
        }
        found == Found::Illegal
    }

    /// The window `start..=end` (no `start`: from the beginning).
    fn window(&self, start: Option<Duration>, end: Duration) -> Vec<Treatment> {
        self.calls
            .iter()
            .map(|call| {
                let answered = call.returned_at();
                if call.invoked > end || start.zip(answered).is_some_and(|(s, at)| at < s) {
                    return Treatment::Drop;
                }
                let inside = start.is_none_or(|start| call.invoked >= start)
                    && answered.is_some_and(|at| at <= end);
                if inside {
                    Treatment::Keep
                } else {
                    Treatment::Forget
                }
            })
            .collect()
    }

    /// Step 1: the earliest end of a failing prefix (the whole history fails).
    fn end(&mut self) -> Option<Duration> {
        let mut ends: Vec<Duration> = self
            .calls
            .iter()
            .filter_map(|call| call.returned_at())
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let init = self.model.init();
        let (mut low, mut high) = (0, ends.len().checked_sub(1)?);
        while low < high {
            let middle = usize::midpoint(low, high);
            if self.fails(&self.window(None, ends[middle]), &init) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Some(ends[low])
    }

    /// Step 2: the latest start of a window ending at `end` that fails from
    /// `any`, if even the earliest does.
    fn start(&mut self, end: Duration, any: &M::State) -> Option<Duration> {
        let mut starts: Vec<Duration> = self
            .calls
            .iter()
            .filter(|call| call.returned_at().is_some_and(|at| at <= end))
            .map(|call| call.invoked)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let (mut low, mut high) = (0, starts.len().checked_sub(1)?);
        if !self.fails(&self.window(Some(starts[0]), end), any) {
            return None;
        }
        while low < high {
            let middle = usize::midpoint(low, high + 1);
            if self.fails(&self.window(Some(starts[middle]), end), any) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Some(starts[low])
    }

    /// Step 3: one call at a time, drop or forget what the failure does not
    /// need, until a pass changes nothing.
    fn prune(&mut self, treatments: &mut [Treatment], from: &M::State) {
        loop {
            let mut changed = false;
            for index in 0..treatments.len() {
                if treatments[index] != Treatment::Keep {
                    continue;
                }
                let call = self.calls[index];
                treatments[index] = if self.model.has_no_effect(&call.input, call.output()) {
                    Treatment::Drop
                } else {
                    Treatment::Forget
                };
                if self.fails(treatments, from) {
                    changed = true;
                } else {
                    treatments[index] = Treatment::Keep;
                }
            }
            if !changed || self.gave_up {
                return;
            }
        }
    }
}

/// Shrinks `calls` (one key's, in invocation order, known to fail from the
/// model's initial state) to a [`Violation`].
pub(crate) fn shrink<M: Model>(
    model: &M,
    key: M::Key,
    calls: &[&OperationOf<M>],
    budget: Budget,
) -> Violation<M> {
    let mut shrinker = Shrinker {
        model,
        calls,
        budget,
        spent: 0,
        gave_up: false,
    };
    let end = shrinker.end().unwrap_or(Duration::MAX);
    let window = model
        .unconstrained()
        .and_then(|any| Some((shrinker.start(end, &any)?, any)));
    let (mut treatments, from) = match window {
        Some((start, any)) => (shrinker.window(Some(start), end), any),
        None => (shrinker.window(None, end), model.init()),
    };
    shrinker.prune(&mut treatments, &from);

    let (mut witness, mut context) = (Vec::new(), Vec::new());
    for (index, forgotten) in shrinker.candidate(&treatments) {
        let call = calls[index].clone();
        if forgotten {
            context.push(call);
        } else {
            witness.push(call);
        }
    }
    Violation {
        key,
        operations: calls.len(),
        witness,
        context,
        from,
        minimal: !shrinker.gave_up,
    }
}

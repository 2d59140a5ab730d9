//! The Wing & Gong search over the calls of one key, with Lowe's memoisation,
//! laid out as Porcupine lays it out.
//!
//! Every call is two entries, its invocation and its response, in one list
//! ordered by time (an unknown outcome's response comes after everything).
//! Walking the list from its head, the search tries to linearize each call it
//! meets whose invocation comes before the first pending response: if the model
//! accepts the call's answer from the current state and the pair (calls
//! linearized, new state) has not been seen, the call is taken out of the list
//! and the walk restarts from the head. Meeting a response first means the
//! calls linearized so far cannot be extended: undo the last one and try the
//! next candidate after it. No definite call left means the history is
//! linearizable; nothing left to undo means it is not.

use std::collections::HashSet;

use crate::{
    history::Operation,
    model::{Model, OperationOf},
};

/// What one search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Some order explains every answer.
    Linearizable,
    /// No order does.
    Illegal,
    /// The step budget ran out first.
    GaveUp,
}

/// The set of calls linearized so far, one bit per call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Linearized(Vec<u64>);

impl Linearized {
    fn new(calls: usize) -> Self {
        Self(vec![0; calls.div_ceil(64)])
    }

    fn set(&mut self, call: usize) {
        self.0[call / 64] |= 1 << (call % 64);
    }

    fn clear(&mut self, call: usize) {
        self.0[call / 64] &= !(1 << (call % 64));
    }
}

/// The calls' entries as a doubly linked list that entries can leave and
/// re-enter in LIFO order (Knuth's dancing links). Node 0 is the head, the
/// last node the tail; the others are entries in time order.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The call each entry belongs to.
    call: Vec<usize>,
    /// Whether an entry is an invocation (else a response).
    is_invocation: Vec<bool>,
    /// The response entry of each invocation entry (unused for responses).
    response: Vec<usize>,
}

const HEAD: usize = 0;

impl Entries {
    fn new<I, O>(calls: &[&Operation<I, O>]) -> Self {
        // (time, invocation first at equal times, call): touching calls count as
        // concurrent, which only ever allows more orders, never fewer.
        let mut events = Vec::with_capacity(calls.len() * 2);
        for (index, call) in calls.iter().enumerate() {
            events.push((call.invoked, 0_u8, index));
            let response = call.returned_at().unwrap_or(std::time::Duration::MAX);
            events.push((response, 1, index));
        }
        events.sort_unstable();

        let nodes = events.len() + 2;
        let tail = nodes - 1;
        let mut entries = Self {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|node| node.saturating_sub(1)).collect(),
            call: vec![usize::MAX; nodes],
            is_invocation: vec![false; nodes],
            response: vec![usize::MAX; nodes],
        };
        entries.next[tail] = tail;
        let mut invocation_of = vec![usize::MAX; calls.len()];
        for (position, &(_, kind, call)) in events.iter().enumerate() {
            let node = position + 1;
            entries.call[node] = call;
            if kind == 0 {
                entries.is_invocation[node] = true;
                invocation_of[call] = node;
            } else {
                entries.response[invocation_of[call]] = node;
            }
        }
        entries
    }

    fn remove(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn restore(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    /// Takes an invocation and its response out of the list.
    fn lift(&mut self, invocation: usize) {
        self.remove(invocation);
        self.remove(self.response[invocation]);
    }

    /// Puts back what the matching [`lift`](Self::lift) took out.
    fn unlift(&mut self, invocation: usize) {
        self.restore(self.response[invocation]);
        self.restore(invocation);
    }
}

/// Searches for a linearization of `calls` (all on one key) from `init`,
/// giving up after `budget` steps. Returns what it found and the steps taken.
pub(crate) fn search<M: Model>(
    model: &M,
    calls: &[&OperationOf<M>],
    init: M::State,
    budget: u64,
) -> (Found, u64) {
    let mut entries = Entries::new(calls);
    let mut definite_left = calls.iter().filter(|call| call.output().is_some()).count();
    let mut linearized = Linearized::new(calls.len());
    let mut seen: HashSet<(Linearized, M::State)> = HashSet::new();
    // The invocations linearized, in order, each with the state before it.
    let mut taken: Vec<(usize, M::State)> = Vec::new();
    let mut state = init;
    let mut entry = entries.next[HEAD];
    let mut steps = 0;
    loop {
        // Calls with unknown outcomes still left go last: no answer depends on them.
        if definite_left == 0 {
            return (Found::Linearizable, steps);
        }
        if steps >= budget {
            return (Found::GaveUp, steps);
        }
        steps += 1;
        if entries.is_invocation[entry] {
            let call = calls[entries.call[entry]];
            if let Some(after) = model.step(&state, &call.input, call.output()) {
                linearized.set(entries.call[entry]);
                if seen.insert((linearized.clone(), after.clone())) {
                    taken.push((entry, std::mem::replace(&mut state, after)));
                    entries.lift(entry);
                    if call.output().is_some() {
                        definite_left -= 1;
                    }
                    entry = entries.next[HEAD];
                    continue;
                }
                linearized.clear(entries.call[entry]);
            }
            entry = entries.next[entry];
        } else {
            // A response (or the tail, which a definite call's response always
            // precedes) before its call was linearized: undo the last choice.
            let Some((invocation, before)) = taken.pop() else {
                return (Found::Illegal, steps);
            };
            let call = entries.call[invocation];
            linearized.clear(call);
            state = before;
            entries.unlift(invocation);
            if calls[call].output().is_some() {
                definite_left += 1;
            }
            entry = entries.next[invocation];
        }
    }
}

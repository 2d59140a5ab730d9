//! # quartet-linearizability
//!
//! Did what concurrent clients saw come from one correct copy of the data?
//! Tests record every call they make (what was asked, when it was invoked, what
//! came back and when, on one monotonic clock) and ask [`check()`] whether some
//! order of those calls, each placed at one instant between its invocation and
//! its response, explains every answer a single sequential object would give.
//! That is linearizability (Herlihy & Wing); the search is Wing & Gong's, with
//! Lowe's memoisation of (calls linearized, state) and per-key partitioning, as
//! Porcupine does it.
//!
//! A call whose outcome is unknown (it failed with UNAVAILABLE or a deadline,
//! say, around a crash) may have taken effect at any instant after its
//! invocation, or never: it gets an open-ended response, as in Porcupine and
//! Jepsen.
//!
//! The search is exponential in the worst case, so it is bounded: past a step
//! budget the answer is [`Verdict::GaveUp`], never a hang. When a history is not
//! linearizable the answer carries a small failing sub-history ([`Violation`]),
//! shrunk from the offending key's calls.
//!
//! # Layout
//! - [`history`]: [`Operation`] (one recorded call), [`Outcome`], and [`Clock`],
//!   the one clock every client of a history reads.
//! - [`model`]: [`Model`], the sequential specification a history is checked
//!   against.
//! - [`check`](mod@check): [`check()`], its [`Verdict`] and [`Violation`].
//! - `search`: the Wing & Gong search over one key's calls.
//! - `shrink`: cutting a failing key's calls down to a small proof, by steps
//!   that only ever allow more orders (a window of time, reads left out,
//!   answers forgotten), so that what still fails proves the history fails.
//! - [`register`]: the people database's records as a model: each id holds
//!   nothing or a (version, name) record ([`PeopleRegister`]).

pub mod check;
pub mod history;
pub mod model;
pub mod register;
mod search;
mod shrink;

pub use check::{Budget, HistoryError, Verdict, Violation, check};
pub use history::{Clock, Operation, Outcome};
pub use model::{Model, OperationOf};
pub use register::{Answer, Call, PeopleRegister, Record, RegisterState};

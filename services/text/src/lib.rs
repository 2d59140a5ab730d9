//! # quartet-text
//!
//! What one user sends is data for the others, never control. This crate says,
//! once for every service and door, which characters may travel from one user
//! to another:
//!
//! - a *line* (a chat message, a person's name) may hold any printable text and
//!   tabs, but no control character (C0, DEL, C1), no line or paragraph
//!   separator, and no bidirectional embedding, override or isolate: those
//!   forge lines, drive terminals (`ESC [2J`) or make text read backwards;
//! - a *name* (a nick, a room) is NFKC-normalised and must also be free of
//!   whitespace and of invisible and format characters (zero-width spaces,
//!   joiners, variation selectors, fillers), so one member cannot pass for
//!   another; two names are the same name when their case-folded forms are;
//! - what a door prints is escaped anyway ([`printable`]), as a second line of
//!   defence against text that did not come through these checks.
//!
//! # Layout
//! - [`hazard`]: the characters refused, and why ([`Hazard`], [`Refusal`]).
//! - [`line`]: [`check_line`], for text said to others.
//! - [`name`]: [`Name`], a normalised name and its comparison key.
//! - [`display`]: [`printable`], escaping for terminals and text protocols, and
//!   [`excerpt`], the bounded quote of a client's input in an error message.

pub mod display;
pub mod hazard;
pub mod line;
pub mod name;

pub use display::{excerpt, printable};
pub use hazard::{Hazard, Refusal};
pub use line::check_line;
pub use name::{Name, NameError};

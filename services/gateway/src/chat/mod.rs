//! The chat text protocol, over TCP and over UDP: one [`session`] state machine,
//! two transports. After `NICK <name>` and `JOIN <room>`, every line is said to
//! the room and others' lines arrive as `<nick> text`; `bye` leaves.

pub mod cookie;
pub mod session;
pub mod tcp;
pub mod udp;

//! The chat text protocol, over TCP and over UDP: the lines parsed in
//! [`command`], the service's events written as lines in [`render`], one
//! [`session`] state machine, two transports ([`tcp`], [`udp`], whose senders
//! prove their address with a [`cookie`]). After `NICK <name>` and
//! `JOIN <room>`, every line is said to the room and others' lines arrive as
//! `<nick> text`; `bye` leaves.

pub mod command;
pub mod cookie;
pub mod render;
pub mod session;
pub mod tcp;
pub mod udp;

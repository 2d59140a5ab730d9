//! The browser door over real sockets: the chat protocol's numbered lines and
//! resuming over raw TCP, and the web door's page, health, WebSockets, limits
//! and origin check with a WebSocket client, against the services and a
//! gateway started in this process on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, dead_code)]

mod chat_lines;
#[path = "../gateway_harness/mod.rs"]
mod gateway_harness;
mod harness;
mod http;
mod sockets;

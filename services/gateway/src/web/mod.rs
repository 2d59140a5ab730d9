//! The web door (HTTP, 7080 by default): a page for people, and WebSockets
//! that carry the text protocols, one line per text frame, under the text
//! ports' limits. `/ws/chat` runs the very chat session TCP and UDP users
//! run, so a browser, a telnet user and a gRPC user share one room.
//!
//! - [`router`]: the routes, serving until drain.
//! - [`state`]: what every handler shares; admission of an upgrade (the
//!   origin check).
//! - [`listener`]: every connection within the gateway's connection budget,
//!   and closed when idle.
//! - [`page`]: the embedded page and `/healthz`.
//! - [`origin`]: which origins may open a socket.
//! - [`limits`]: what a frame may be, and the close code of one that is not.
//! - [`socket`]: a WebSocket as a line transport: bounded queue, pings, close.
//! - [`chat`]: the chat socket, `/ws/chat`.
//! - [`weather`]: the weather socket, `/ws/weather`, and the `/stations` list.

pub mod chat;
pub mod limits;
pub mod listener;
pub mod origin;
pub mod page;
pub mod router;
pub mod socket;
pub mod state;
pub mod weather;

pub use limits::WebLimits;
pub use router::serve;
pub use state::WebState;

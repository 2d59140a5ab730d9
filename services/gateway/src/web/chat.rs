//! `/ws/chat`: the chat text protocol over a WebSocket, one line per text
//! frame both ways. The session is the very one TCP and UDP users run
//! ([`crate::chat::session`]); this module only admits the socket and hands
//! it its frames.

use axum::{
    extract::{State, ws::WebSocketUpgrade},
    http::HeaderMap,
    response::Response,
};

use super::{limits::WebLimits, socket, state::WebState};
use crate::chat::session;

/// Upgrades a browser (or any WebSocket client) to a chat session.
pub async fn upgrade(
    State(state): State<WebState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let limits: WebLimits = state.limits;
    state
        .clone()
        .upgrade(&headers, upgrade, move |websocket| async move {
            let (input, sink, writer) = socket::open(websocket, limits);
            let writing = tokio::spawn(writer);
            session::run(
                state.upstreams.clone(),
                input,
                sink,
                limits.idle,
                state.drain.clone(),
            )
            .await;
            let _ = writing.await;
        })
}

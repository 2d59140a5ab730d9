//! The web door's routes, and serving them until the gateway drains.

use std::sync::Arc;

use axum::{Router, routing::get};
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::warn;

use super::{chat, listener::LimitedListener, page, state::WebState, weather};

/// Every route of the web door.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/healthz", get(page::healthz))
        .route("/stations", get(weather::stations))
        .route("/ws/chat", get(chat::upgrade))
        .route("/ws/weather", get(weather::upgrade))
        .with_state(state)
}

/// Serves the web door on `listener` until the gateway drains (the sockets
/// then end on their own, each with its last line); every connection takes
/// one of `permits`, the gateway's connection budget.
pub async fn serve(listener: TcpListener, permits: Arc<Semaphore>, state: WebState) {
    let drain = state.drain.clone();
    let listener = LimitedListener::new(listener, permits, state.limits.idle);
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { drain.draining().await })
        .await;
    if let Err(error) = served {
        warn!(error = %error, "web door stopped");
    }
}

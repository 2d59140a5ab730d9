//! The web door's routes and what every handler shares: upstream clients,
//! limits, the gateway's connection limit, the allowed origins, the drain.

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderMap, StatusCode, header},
    routing::get,
};
use prometheus_client::metrics::gauge::Gauge;
use quartet_runtime::DrainSignal;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};
use tracing::warn;

use super::{
    chat, limits::WebLimits, listener::LimitedListener, origin::AllowedOrigins, page, weather,
};
use crate::{reply::err, upstreams::Upstreams};

/// What every request handler of the web door shares.
#[derive(Debug, Clone)]
pub struct WebState {
    /// The web door's own clients of the services.
    pub upstreams: Upstreams,
    /// Bounds of each socket.
    pub limits: WebLimits,
    /// Open WebSockets, in `gateway_connections{protocol="web"}`.
    pub gauge: Gauge,
    /// Who may upgrade besides the page's own origin.
    pub origins: Arc<AllowedOrigins>,
    /// Sockets end when the gateway drains.
    pub drain: DrainSignal,
    /// Every socket, so the gateway's drain waits for them.
    pub tracker: TaskTracker,
    /// Read when `/ws/weather` names no station.
    pub default_station: String,
}

/// A WebSocket admitted: holds its place in the gauge and the drain for as
/// long as it lives (its connection holds the connection permit, see
/// [`super::listener`]).
#[derive(Debug)]
pub struct Admission {
    _tracked: TaskTrackerToken,
    gauge: Gauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl WebState {
    /// Admits an upgrade, unless it comes from an origin not allowed (403).
    pub fn admit(&self, headers: &HeaderMap) -> Result<Admission, (StatusCode, String)> {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        if !self
            .origins
            .allows(text(header::ORIGIN), text(header::HOST))
        {
            let refusal = err("PERMISSION_DENIED", "this origin may not open the socket");
            return Err((StatusCode::FORBIDDEN, refusal));
        }
        self.gauge.inc();
        Ok(Admission {
            _tracked: self.tracker.token(),
            gauge: self.gauge.clone(),
        })
    }
}

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

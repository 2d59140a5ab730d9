//! What every handler of the web door shares, and the admission of an
//! upgrade: the origin check, the connections gauge, the drain's tracker.

use std::sync::Arc;

use std::future::Future;

use axum::{
    extract::ws::{WebSocket, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use prometheus_client::metrics::gauge::Gauge;
use quartet_runtime::DrainSignal;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use super::{limits::WebLimits, origin::AllowedOrigins};
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

    /// Admits an upgrade (or answers the refusal), bounds its frames by the
    /// line limit, and runs `serve` on the socket; the admission lasts until
    /// `serve` is done.
    pub fn upgrade<F, Fut>(
        &self,
        headers: &HeaderMap,
        upgrade: WebSocketUpgrade,
        serve: F,
    ) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let admission = match self.admit(headers) {
            Ok(admission) => admission,
            Err(refusal) => return refusal.into_response(),
        };
        let bound = self.limits.max_message_bytes();
        upgrade
            .max_message_size(bound)
            .max_frame_size(bound)
            .on_upgrade(move |websocket| async move {
                serve(websocket).await;
                drop(admission);
            })
    }
}

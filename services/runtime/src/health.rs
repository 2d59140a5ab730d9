//! `grpc.health.v1.Health`, overall (service `""`) and per service.
//!
//! Our own implementation on tonic-health's generated types, for one reason: its
//! `Watch` streams must end when the server drains, or every Kubernetes probe or
//! client watching health would hold the drain open until it times out.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
};

use futures_util::{Stream, stream};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_server::{Health, HealthServer},
};

use crate::shutdown::DrainSignal;

/// The fully-qualified name of the health service itself.
pub const HEALTH_SERVICE_NAME: &str = "grpc.health.v1.Health";

/// The health status of every service a server hosts, plus the overall status
/// under the empty name. Services may hold a clone to report their own state (a
/// database that lost its backend goes NOT_SERVING).
#[derive(Debug, Clone)]
pub struct HealthRegistry {
    statuses: Arc<RwLock<HashMap<String, watch::Sender<ServingStatus>>>>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthRegistry {
    /// A registry that knows only the overall status, NOT_SERVING until the server
    /// starts.
    pub fn new() -> Self {
        let registry = Self {
            statuses: Arc::default(),
        };
        registry.set("", ServingStatus::NotServing);
        registry
    }

    /// Sets the status of `service` (the empty name is the whole server),
    /// registering it if it is new, and wakes its watchers.
    pub fn set(&self, service: &str, status: ServingStatus) {
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match statuses.get(service) {
            Some(sender) => {
                sender.send_replace(status);
            }
            None => {
                statuses.insert(service.to_owned(), watch::Sender::new(status));
            }
        }
    }

    /// Sets every registered service, and the overall status, at once.
    pub fn set_all(&self, status: ServingStatus) {
        let statuses = self.statuses.read().unwrap_or_else(PoisonError::into_inner);
        for sender in statuses.values() {
            sender.send_replace(status);
        }
    }

    /// The current status of `service`, or `None` when it is not registered.
    pub fn get(&self, service: &str) -> Option<ServingStatus> {
        self.subscribe(service).map(|receiver| *receiver.borrow())
    }

    fn subscribe(&self, service: &str) -> Option<watch::Receiver<ServingStatus>> {
        let statuses = self.statuses.read().unwrap_or_else(PoisonError::into_inner);
        statuses.get(service).map(watch::Sender::subscribe)
    }

    /// The gRPC service that serves this registry; its watches end on `drain`.
    pub(crate) fn service(&self, drain: DrainSignal) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            registry: self.clone(),
            drain,
        })
    }
}

/// Serves a [`HealthRegistry`].
#[derive(Debug)]
pub(crate) struct HealthService {
    registry: HealthRegistry,
    drain: DrainSignal,
}

type WatchResponses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

/// One message of a Watch stream (never an error: a watch reports, it does not fail).
#[allow(clippy::unnecessary_wraps)]
fn response(status: ServingStatus) -> Result<HealthCheckResponse, Status> {
    Ok(HealthCheckResponse {
        status: status.into(),
    })
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.registry.get(&service) {
            Some(status) => response(status).map(Response::new),
            None => Err(Status::not_found(format!(
                "unknown service {}",
                quartet_text::excerpt(&service)
            ))),
        }
    }

    type WatchStream = WatchResponses;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let watch = Watch {
            receiver: self.registry.subscribe(&service),
            drain: self.drain.clone(),
            started: false,
        };
        Ok(Response::new(Box::pin(stream::unfold(watch, Watch::next))))
    }
}

/// One Watch call: the current status first, then every change, until drain.
struct Watch {
    /// `None` for a service that is not registered.
    receiver: Option<watch::Receiver<ServingStatus>>,
    drain: DrainSignal,
    started: bool,
}

impl Watch {
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, Status>, Self)> {
        if !std::mem::replace(&mut self.started, true) {
            let status = match &mut self.receiver {
                Some(receiver) => *receiver.borrow_and_update(),
                // The spec: say SERVICE_UNKNOWN, then keep the call open.
                None => ServingStatus::ServiceUnknown,
            };
            return Some((response(status), self));
        }
        let Some(receiver) = &mut self.receiver else {
            self.drain.draining().await;
            return None;
        };
        tokio::select! {
            // A change beats the drain, so watchers always see NOT_SERVING before
            // the stream ends, however short the shutdown delay.
            biased;
            changed = receiver.changed() => {
                changed.ok()?;
                let status = *receiver.borrow_and_update();
                Some((response(status), self))
            }
            () = self.drain.draining() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{HealthRegistry, ServingStatus};

    #[test]
    fn overall_status_starts_not_serving() {
        let registry = HealthRegistry::new();
        assert_eq!(registry.get(""), Some(ServingStatus::NotServing));
        assert_eq!(registry.get("quartet.transform.v1.TransformService"), None);
    }

    #[test]
    fn set_all_changes_every_registered_service() {
        let registry = HealthRegistry::new();
        registry.set("a", ServingStatus::NotServing);
        registry.set("b", ServingStatus::NotServing);
        registry.set_all(ServingStatus::Serving);
        for service in ["", "a", "b"] {
            assert_eq!(
                registry.get(service),
                Some(ServingStatus::Serving),
                "{service}"
            );
        }
    }
}

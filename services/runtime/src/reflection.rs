//! Server reflection, `grpc.reflection.v1` and `v1alpha` (older grpcurl and
//! grpc-go tools still ask the latter), advertising exactly the services a server
//! hosts rather than every service in the descriptor sets.
//!
//! Both are built on their first call, not at start: building one decodes every
//! descriptor set and indexes every symbol in it, memory an idle server would
//! hold for good although only tools (grpcurl, a debugging session) ever ask.
//! The descriptor sets are still checked at start, by `ServedMethods`, which
//! fails the server when they do not describe what it hosts.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use futures_util::future::Either;
use tonic::{Status, body::Body, server::NamedService};
use tonic_reflection::{
    pb::{v1, v1alpha},
    server::{
        Builder, Error, v1::ServerReflectionServer,
        v1alpha::ServerReflectionServer as V1AlphaServer,
    },
};
use tower_service::Service;

use crate::health::HEALTH_SERVICE_NAME;

/// The v1 and v1alpha reflection services for `services`, described by
/// `descriptor_sets` (the health and reflection descriptors are added here),
/// each built on its first call.
pub(crate) fn services(
    descriptor_sets: &[&'static [u8]],
    services: &[&'static str],
) -> (
    BuiltOnFirstCall<ServerReflectionServer<impl v1::server_reflection_server::ServerReflection>>,
    BuiltOnFirstCall<V1AlphaServer<impl v1alpha::server_reflection_server::ServerReflection>>,
) {
    let descriptor_sets = descriptor_sets.to_vec();
    let services = services.to_vec();
    let builder = move |reflection_name: &str| {
        let mut builder = Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE_NAME)
            .with_service_name(reflection_name);
        for set in &descriptor_sets {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        for service in &services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    let builder = Arc::new(builder);
    let v1_builder = builder.clone();
    (
        BuiltOnFirstCall::new(move || {
            v1_builder(v1::server_reflection_server::SERVICE_NAME).build_v1()
        }),
        BuiltOnFirstCall::new(move || {
            builder(v1alpha::server_reflection_server::SERVICE_NAME).build_v1alpha()
        }),
    )
}

/// How a service is built when it is first called.
type Build<S> = dyn Fn() -> Result<S, Error> + Send + Sync;

/// A generated tonic service built on its first call and kept; a build that
/// fails answers every call INTERNAL.
pub(crate) struct BuiltOnFirstCall<S> {
    built: Arc<OnceLock<Result<S, String>>>,
    build: Arc<Build<S>>,
}

impl<S> BuiltOnFirstCall<S> {
    fn new(build: impl Fn() -> Result<S, Error> + Send + Sync + 'static) -> Self {
        Self {
            built: Arc::new(OnceLock::new()),
            build: Arc::new(build),
        }
    }
}

impl<S> Clone for BuiltOnFirstCall<S> {
    fn clone(&self) -> Self {
        Self {
            built: self.built.clone(),
            build: self.build.clone(),
        }
    }
}

impl<S: NamedService> NamedService for BuiltOnFirstCall<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for BuiltOnFirstCall<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Generated tonic services are always ready, so the built one is too.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let built = self
            .built
            .get_or_init(|| (self.build)().map_err(|error| error.to_string()));
        match built {
            Ok(service) => Either::Left(service.clone().call(request)),
            Err(error) => Either::Right(ready(Ok(Status::internal(format!(
                "reflection is unavailable: {error}"
            ))
            .into_http()))),
        }
    }
}

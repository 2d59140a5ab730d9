//! # quartet-runtime
//!
//! What every Quartet server does the same way, so each service crate only
//! implements its contract. A binary parses its command line and starts its
//! [`Process`] in one call ([`Process::parse`]: the [`ProcessOptions`] every
//! server takes plus its service's own; telemetry, signals, the process's
//! [`Metrics`]), builds a [`GrpcServer`] with its service, and hands it to the
//! process to bind, announce and serve.
//!
//! # Layout
//! - [`config`]: the shared flags ([`Limits`], [`ShutdownPolicy`]) with env fallbacks.
//! - [`process`]: [`Process`], what every server binary does around its
//!   server, from parsing its flags to serving.
//! - [`telemetry`]: tracing to stderr as text or JSON, filtered by `RUST_LOG`.
//! - [`scheduler`]: the tokio runtime of a server binary (`QUARTET_RUNTIME`).
//! - [`server`]: [`GrpcServer`] and [`BoundServer`]: assembly, binding (port 0
//!   works and reports the real port), serving and the shutdown sequence.
//! - `error`: [`ServeError`], why a server could not start (with
//!   [`DescriptorError`] for descriptor sets that miss a hosted service).
//! - [`shutdown`]: [`Shutdown`] (signals, two phases) and the [`DrainSignal`]
//!   services watch to close long-lived streams.
//! - [`stream`]: [`UntilDrained`], the response stream of a long-lived call:
//!   its source's items, until the first error or the drain's goodbye.
//! - [`health`]: `grpc.health.v1.Health`, overall and per service.
//! - `reflection`: `grpc.reflection.v1` and `v1alpha` for the hosted services,
//!   built on their first call.
//! - `accept`: the accept loop, plaintext or TLS ([`tls`], reloading certificates),
//!   under the connection cap and the handshake deadline.
//! - `workers`: the connection workers, one single-threaded event loop per CPU
//!   that serves its share of a server's connections (`--connection-workers`).
//! - The tower layers every call passes through, outermost first:
//!   [`call_trace`] (span, status, latency, and the [`metrics`]), [`auth`]
//!   (UNAUTHENTICATED without a valid bearer token), [`overload`]
//!   (RESOURCE_EXHAUSTED past the in-flight budget), [`request_framing`]
//!   (RESOURCE_EXHAUSTED for oversize messages, INVALID_ARGUMENT for missing
//!   or truncated ones, and the mark of calls whose client went away),
//!   [`request_timeout`] (DEADLINE_EXCEEDED).
//! - [`served_methods`]: the methods a server hosts, from its descriptor sets;
//!   only they get their own metric series.
//! - [`metrics`]: the Prometheus registry of a process and its `/metrics`
//!   endpoint; servers are given it when they are assembled.
//! - [`reload`]: values rebuilt when their files change (certificates, tokens),
//!   keeping the last good value or failing closed when the files do not load.
//! - [`status_names`]: canonical gRPC code names for logs and messages (the
//!   CLI and the gateway print them too).
//!
//! The client side (credentials, addresses, balancing) is `quartet-client`.

mod accept;
pub mod auth;
pub mod call_trace;
pub mod config;
mod error;
pub mod health;
pub mod metrics;
pub mod overload;
pub mod process;
mod reflection;
pub mod reload;
pub mod request_framing;
pub mod request_timeout;
pub mod scheduler;
pub mod served_methods;
pub mod server;
pub mod shutdown;
pub mod status_names;
pub mod stream;
pub mod telemetry;
pub mod tls;
mod workers;

pub use config::{Limits, ServerOptions, ShutdownPolicy};
pub use error::{DescriptorError, ServeError};
pub use health::{HealthRegistry, ServingStatus};
pub use metrics::Metrics;
pub use process::{Process, ProcessError, ProcessOptions};
pub use scheduler::tokio_runtime;
pub use server::{BoundServer, GrpcServer, RunningServer};
pub use shutdown::{DrainSignal, Shutdown};
pub use stream::UntilDrained;
pub use telemetry::{LogFormat, TelemetryOptions};

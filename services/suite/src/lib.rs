//! # quartet-suite
//!
//! Every Quartet service in one process, assembled one way: `quartet serve`,
//! the benchmark baseline (`bench/bare`) and the end-to-end tests build,
//! bind and run the services through this crate, so none of them repeats how
//! a service is put together. Each service crate has the same shape (its
//! options, `handler(&options)`, `server(options, shutdown, handler)`); this
//! crate only calls it for each service and runs the results side by side.
//!
//! # Layout
//! - [`service`]: [`Service`] (which one), [`ServiceOptions`] (the four
//!   services' own flags) and [`Handler`] (a service built from them).
//! - [`suite`]: [`Suite`], the servers bound (a taken port fails before
//!   anything serves) with the gateway in front if asked, and
//!   [`RunningSuite`], serving until one stops.
//! - [`error`]: [`SuiteError`], why a service could not start.

pub mod error;
pub mod service;
pub mod suite;

pub use error::SuiteError;
pub use service::{Handler, Service, ServiceOptions};
pub use suite::{RunningSuite, Suite};

//! The tokio runtime a server binary runs on, chosen with `QUARTET_RUNTIME`:
//!
//! - `multi-thread` (the default): tokio's work-stealing scheduler, one
//!   worker per CPU (`TOKIO_WORKER_THREADS` changes the count);
//! - `current-thread`: every task on the main thread, connection workers
//!   included unless `--connection-workers` asks for some.
//!
//! gRPC connections are not served on this runtime by default: each server
//! hands them to its connection workers (`crate::workers`), one
//! single-threaded event loop per CPU, because a call whose tasks wake each
//! other across work-stealing threads cost twice the CPU under h2load
//! (BENCHMARKS.md, "Transform under h2load"). This runtime runs the accept
//! loops, the services' background tasks and the gateway.
//!
//! An environment variable rather than a flag because the runtime is built
//! before anything else runs, and `quartet serve` (servers inside the CLI)
//! has a runtime of its own.

use std::{env, io};

use tokio::runtime::{Builder, Runtime};

/// The variable that picks the scheduler.
pub const RUNTIME_ENV: &str = "QUARTET_RUNTIME";

/// Which scheduler a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// tokio's work-stealing scheduler, a worker per CPU.
    MultiThread,
    /// Everything on the thread that starts the runtime.
    CurrentThread,
}

impl Scheduler {
    /// The scheduler `value` of [`RUNTIME_ENV`] names (`None`: unset).
    pub fn named(value: Option<&str>) -> io::Result<Self> {
        match value {
            None | Some("" | "multi-thread") => Ok(Self::MultiThread),
            Some("current-thread") => Ok(Self::CurrentThread),
            Some(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{RUNTIME_ENV}={other}: expected multi-thread or current-thread"),
            )),
        }
    }
}

/// The runtime [`RUNTIME_ENV`] asks for, with I/O and timers enabled.
pub fn tokio_runtime() -> io::Result<Runtime> {
    let value = match env::var(RUNTIME_ENV) {
        Ok(value) => Some(value),
        Err(env::VarError::NotPresent) => None,
        Err(env::VarError::NotUnicode(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{RUNTIME_ENV} is not UTF-8"),
            ));
        }
    };
    let mut builder = match Scheduler::named(value.as_deref())? {
        Scheduler::MultiThread => Builder::new_multi_thread(),
        Scheduler::CurrentThread => Builder::new_current_thread(),
    };
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::Scheduler;

    #[test]
    fn unset_or_empty_is_the_work_stealing_scheduler() {
        assert_eq!(Scheduler::named(None).unwrap(), Scheduler::MultiThread);
        assert_eq!(Scheduler::named(Some("")).unwrap(), Scheduler::MultiThread);
        assert_eq!(
            Scheduler::named(Some("multi-thread")).unwrap(),
            Scheduler::MultiThread
        );
    }

    #[test]
    fn current_thread_is_named_and_typos_are_refused() {
        assert_eq!(
            Scheduler::named(Some("current-thread")).unwrap(),
            Scheduler::CurrentThread
        );
        let error = Scheduler::named(Some("single")).unwrap_err();
        assert!(error.to_string().contains("QUARTET_RUNTIME=single"));
    }
}

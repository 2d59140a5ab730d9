//! Values built from files that may change under a running server: TLS
//! certificates (Kubernetes rotates Secrets in place) and auth tokens.
//!
//! A task re-reads the files every interval and rebuilds the value when their
//! bytes change. Polling, not inotify: Kubernetes swaps a symlink to update a
//! mounted Secret, which file watches on the old target miss. A file that does not
//! parse keeps the previous value in service and is logged.

use std::{path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A value rebuilt from files when they change. Cheap to clone and to read.
pub struct Reloading<T> {
    current: Arc<ArcSwap<T>>,
}

impl<T> Clone for Reloading<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").finish_non_exhaustive()
    }
}

/// Why files could not be turned into a value.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LoadError {
    /// The file at fault.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, LoadError> {
    paths
        .iter()
        .map(|path| {
            std::fs::read(path).map_err(|error| LoadError {
                path: path.display().to_string(),
                reason: error.to_string(),
            })
        })
        .collect()
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Loads `paths` with `build` now (failing if it fails), then every
    /// `interval` until `stop`, replacing the value when the files change.
    /// `what` names the value in logs.
    pub fn start(
        what: &'static str,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: impl Fn(&[Vec<u8>]) -> Result<T, LoadError> + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> Result<Self, LoadError> {
        let mut seen = read_all(&paths)?;
        let current = Arc::new(ArcSwap::from_pointee(build(&seen)?));
        let reloading = Self { current };
        let target = reloading.current.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                let contents = match read_all(&paths) {
                    Ok(contents) => contents,
                    Err(error) => {
                        warn!(what, error = %error, "cannot re-read; keeping the current value");
                        continue;
                    }
                };
                if contents == seen {
                    continue;
                }
                match build(&contents) {
                    Ok(value) => {
                        target.store(Arc::new(value));
                        info!(what, "reloaded after its files changed");
                    }
                    Err(error) => {
                        warn!(what, error = %error, "changed files do not load; keeping the current value");
                    }
                }
                seen = contents;
            }
        });
        Ok(reloading)
    }

    /// The current value.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A value that never changes, for tests and fixed configuration.
    pub fn fixed(value: T) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(value)),
        }
    }
}

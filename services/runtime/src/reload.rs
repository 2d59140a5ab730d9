//! Values built from files that may change under a running server: TLS
//! certificates (Kubernetes rotates Secrets in place) and auth tokens.
//!
//! A task re-reads the files every interval and rebuilds the value when their
//! bytes change. Polling, not inotify: Kubernetes swaps a symlink to update a
//! mounted Secret, which file watches on the old target miss.
//!
//! Files that cannot be read or do not load are handled as the value needs:
//! [`Reloading::start`] keeps the last value that loaded (an old certificate
//! beats none), [`Reloading::start_failing_closed`] switches to a value that
//! grants nothing (no token valid), so that emptying or removing the files
//! revokes what they granted. Either way, each change of what the files hold
//! is logged once, not at every look.

use std::{path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LoadError {
    /// The file at fault.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The files' bytes at one look, or why they could not be read.
type Observation = Result<Vec<Vec<u8>>, LoadError>;

fn read_all(paths: &[PathBuf]) -> Observation {
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

/// What a reloader serves while its files cannot be read or do not load.
enum Fallback<T> {
    /// The last value that loaded.
    LastGood,
    /// A value that grants nothing; `consequence` says what that means, for
    /// the ERROR line.
    Closed {
        value: Arc<T>,
        consequence: &'static str,
    },
}

/// The task's side of a [`Reloading`]: looks at the files and updates the value.
struct Watcher<T, B> {
    /// Names the value in logs.
    what: &'static str,
    paths: Vec<PathBuf>,
    build: B,
    fallback: Fallback<T>,
    target: Arc<ArcSwap<T>>,
    /// What the files held at the last look (`None` before the first).
    seen: Option<Observation>,
}

impl<T, B> Watcher<T, B>
where
    T: Send + Sync + 'static,
    B: Fn(&[Vec<u8>]) -> Result<T, LoadError> + Send + Sync + 'static,
{
    /// Reads the files and, if they changed since the last look, rebuilds the
    /// value or falls back, saying so once.
    fn look(&mut self) {
        let observed = read_all(&self.paths);
        if self.seen.as_ref() == Some(&observed) {
            return;
        }
        let loaded = match &observed {
            Ok(files) => (self.build)(files),
            Err(error) => Err(error.clone()),
        };
        let what = self.what;
        match (loaded, &self.fallback) {
            (Ok(value), _) => {
                self.target.store(Arc::new(value));
                if self.seen.is_some() {
                    info!(what, "reloaded after its files changed");
                }
            }
            (Err(error), Fallback::LastGood) => {
                warn!(what, error = %error, "files do not load; keeping the last value that did");
            }
            (Err(error), Fallback::Closed { value, consequence }) => {
                self.target.store(value.clone());
                error!(what, error = %error, consequence, "files do not load; failing closed until they do");
            }
        }
        self.seen = Some(observed);
    }

    /// Looks at the files every `interval` until `stop`.
    fn spawn(mut self, interval: Duration, stop: CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                self.look();
            }
        });
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Loads `paths` with `build` now (failing if it fails), then every
    /// `interval` until `stop`, replacing the value when the files change.
    /// Files that stop loading keep the last value that did, with a WARN.
    /// `what` names the value in logs.
    pub fn start(
        what: &'static str,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: impl Fn(&[Vec<u8>]) -> Result<T, LoadError> + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> Result<Self, LoadError> {
        let files = read_all(&paths)?;
        let current = Arc::new(ArcSwap::from_pointee(build(&files)?));
        Watcher {
            what,
            paths,
            build,
            fallback: Fallback::LastGood,
            target: current.clone(),
            seen: Some(Ok(files)),
        }
        .spawn(interval, stop);
        Ok(Self { current })
    }

    /// Like [`start`](Self::start), but while the files cannot be read or do
    /// not load, at start too, the value is `closed` (one that grants
    /// nothing), with an ERROR saying why and the `consequence`. Never fails:
    /// files that load later take effect at the next look.
    pub fn start_failing_closed(
        what: &'static str,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: impl Fn(&[Vec<u8>]) -> Result<T, LoadError> + Send + Sync + 'static,
        closed: T,
        consequence: &'static str,
        stop: CancellationToken,
    ) -> Self {
        let closed = Arc::new(closed);
        let current = Arc::new(ArcSwap::new(closed.clone()));
        let mut watcher = Watcher {
            what,
            paths,
            build,
            fallback: Fallback::Closed {
                value: closed,
                consequence,
            },
            target: current.clone(),
            seen: None,
        };
        watcher.look();
        watcher.spawn(interval, stop);
        Self { current }
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

#[cfg(test)]
mod tests {
    use std::{
        path::Path,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tokio_util::sync::CancellationToken;

    use super::{LoadError, Reloading};

    const INTERVAL: Duration = Duration::from_secs(1);

    /// Lines logged at ERROR on this thread.
    #[derive(Clone, Default)]
    struct Errors(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Errors {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Errors {
        fn count(&self) -> usize {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .count()
        }
    }

    /// The words of a file, or an error when it has none.
    fn words(files: &[Vec<u8>]) -> Result<String, LoadError> {
        let text = String::from_utf8_lossy(&files[0]).trim().to_owned();
        if text.is_empty() {
            return Err(LoadError {
                path: "words".into(),
                reason: "empty".into(),
            });
        }
        Ok(text)
    }

    async fn start_words(path: &Path) -> Reloading<String> {
        let words = Reloading::start_failing_closed(
            "words",
            vec![path.to_owned()],
            INTERVAL,
            words,
            "closed".to_owned(),
            "nothing is said",
            CancellationToken::new(),
        );
        // Lets the reloader's task start its first wait.
        tokio::task::yield_now().await;
        words
    }

    /// Lets the reloader take `looks` more looks at its files.
    async fn looks(looks: u32) {
        for _ in 0..looks {
            tokio::time::advance(INTERVAL).await;
            // The reloader's task runs when this one yields.
            tokio::task::yield_now().await;
        }
    }

    // Paused time: each `advance` is one look, with no real waiting.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn failing_closed_follows_the_file_and_says_so_once_per_change() {
        let errors = Errors::default();
        let writer = errors.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words");

        // Missing at start: closed, said once however often it is looked at.
        let words = start_words(&path).await;
        assert_eq!(*words.current(), "closed");
        looks(3).await;
        assert_eq!(errors.count(), 1);

        std::fs::write(&path, "hello\n").unwrap();
        looks(1).await;
        assert_eq!(*words.current(), "hello");

        // Emptied: closed again, said once.
        std::fs::write(&path, "").unwrap();
        looks(3).await;
        assert_eq!(*words.current(), "closed");
        assert_eq!(errors.count(), 2);

        std::fs::write(&path, "again\n").unwrap();
        looks(1).await;
        assert_eq!(*words.current(), "again");

        // Removed: closed, said once.
        std::fs::remove_file(&path).unwrap();
        looks(3).await;
        assert_eq!(*words.current(), "closed");
        assert_eq!(errors.count(), 3);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn last_good_keeps_the_value_when_the_file_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words");
        std::fs::write(&path, "hello\n").unwrap();
        let words = Reloading::start(
            "words",
            vec![path.clone()],
            INTERVAL,
            words,
            CancellationToken::new(),
        )
        .unwrap();
        tokio::task::yield_now().await;
        std::fs::remove_file(&path).unwrap();
        looks(2).await;
        assert_eq!(*words.current(), "hello");
        std::fs::write(&path, "again\n").unwrap();
        looks(1).await;
        assert_eq!(*words.current(), "again");
    }
}

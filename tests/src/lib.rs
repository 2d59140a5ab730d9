//! # quartet-e2e
//!
//! End-to-end tests live in `tests/`: `gateway_*.rs`, the gateway in front
//! of every real service started in-process by `quartet-suite` (their harness,
//! services plus line and datagram users, is `tests/gateway_harness/`), and
//! `interop.rs`, an independent gRPC stack against a real server. This
//! library is the harness they, and the services' own tests, share: start a
//! real server process, learn its address from the line it announces, signal
//! it, see how it exits, and wait on gRPC answers without ever waiting for
//! ever.
//!
//! # Layout
//! - [`ServerProcess`]: a child process started with stdout piped, and the
//!   addresses it announced (`<name> listening on ADDR`); [`exit_of`]: how a
//!   command that is expected to stop stops ([`assert_usage_error`] for bad
//!   flags).
//! - [`grpc`]: waits on calls, stream messages and health, bounded by
//!   [`DEADLINE`].
//! - [`external`]: the external services and programs a test needs
//!   (PostgreSQL, NATS, chromedriver), skips that show ([`external::skip`]),
//!   and fresh PostgreSQL schemas.

pub mod external;
pub mod grpc;

use std::{collections::HashMap, process::Stdio, time::Duration};

use nix::unistd::Pid;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines},
    process::{Child, ChildStdout, Command},
    time::timeout,
};

/// The signals tests send (SIGTERM to drain, SIGKILL to crash).
pub use nix::sys::signal::Signal;

/// How long a test waits for a process to announce itself or to exit.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Why a server process did not come up as a test expected.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The process could not be started.
    #[error("cannot start the server: {0}")]
    Spawn(#[from] std::io::Error),
    /// It exited, or printed something else, before announcing everything.
    #[error("the server stopped before announcing {expected}: {detail}")]
    NotAnnounced {
        /// What was awaited.
        expected: String,
        /// What happened instead.
        detail: String,
    },
    /// It took longer than [`DEADLINE`].
    #[error("the server took longer than {DEADLINE:?} to announce itself or to exit")]
    TimedOut,
}

/// How a command ended: its exit code (`None` when a signal ended it) and
/// what it printed.
#[derive(Debug)]
pub struct Exit {
    /// The exit code.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error, where usage errors and failures are told.
    pub stderr: String,
}

/// Runs `command` to its end, within [`DEADLINE`]: for binaries expected to
/// refuse their flags or fail to start.
pub async fn exit_of(command: &mut Command) -> Result<Exit, HarnessError> {
    let output = timeout(DEADLINE, command.output())
        .await
        .map_err(|_| HarnessError::TimedOut)??;
    Ok(Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `command`, which must refuse its flags as clap does: exit code 2 and a
/// message naming `flag`.
///
/// # Panics
/// When it does anything else, or cannot be run within [`DEADLINE`].
pub async fn assert_usage_error(command: &mut Command, flag: &str) {
    match exit_of(command).await {
        Ok(exit) => assert!(
            exit.code == Some(2) && exit.stderr.contains(flag),
            "not a usage error about {flag}: {exit:?}"
        ),
        Err(error) => panic!("cannot run the command: {error}"),
    }
}

/// A server binary running for a test, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    announced: HashMap<String, String>,
    /// The rest of its stdout, for tests that read more.
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts `command` and waits until it has announced every name in
    /// `names` (`transform` for `transform listening on ADDR`). Logs are kept to
    /// warnings unless the command says otherwise.
    pub async fn start(mut command: Command, names: &[&str]) -> Result<Self, HarnessError> {
        command.stdout(Stdio::piped()).kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::NotAnnounced {
                expected: names.join(", "),
                detail: "no stdout".into(),
            })?;
        let mut stdout = BufReader::new(stdout).lines();
        let mut announced = HashMap::new();
        while !names.iter().all(|name| announced.contains_key(*name)) {
            let line = timeout(DEADLINE, stdout.next_line())
                .await
                .map_err(|_| HarnessError::TimedOut)??
                .ok_or_else(|| HarnessError::NotAnnounced {
                    expected: names.join(", "),
                    detail: "stdout closed".into(),
                })?;
            let (name, addr) =
                line.rsplit_once(" listening on ")
                    .ok_or_else(|| HarnessError::NotAnnounced {
                        expected: names.join(", "),
                        detail: format!("unexpected line {line:?}"),
                    })?;
            announced.insert(name.to_owned(), addr.to_owned());
        }
        Ok(Self {
            child,
            announced,
            stdout,
        })
    }

    /// The address `name` announced (`127.0.0.1:PORT`), if it did.
    pub fn addr(&self, name: &str) -> Option<&str> {
        self.announced.get(name).map(String::as_str)
    }

    /// The gRPC URL of what `name` announced (`http://127.0.0.1:PORT`).
    pub fn url(&self, name: &str) -> Option<String> {
        self.addr(name).map(|addr| format!("http://{addr}"))
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// How many of the process's threads have a name starting with `prefix`
    /// (Linux keeps each thread's name in `/proc/PID/task/*/comm`).
    pub fn threads_named(&self, prefix: &str) -> usize {
        let Some(pid) = self.pid() else { return 0 };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<(), HarnessError> {
        let id = self.child.id().ok_or_else(|| HarnessError::NotAnnounced {
            expected: "a running process".into(),
            detail: "it has exited".into(),
        })?;
        let pid = i32::try_from(id).map_err(|_| HarnessError::NotAnnounced {
            expected: "a valid pid".into(),
            detail: id.to_string(),
        })?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(std::io::Error::from)?;
        Ok(())
    }

    /// Waits for the process to exit and returns its exit code (`None` when a
    /// signal ended it).
    pub async fn exit_code(&mut self) -> Result<Option<i32>, HarnessError> {
        let status = timeout(DEADLINE, self.child.wait())
            .await
            .map_err(|_| HarnessError::TimedOut)??;
        Ok(status.code())
    }
}

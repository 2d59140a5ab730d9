//! [`Broker`]: the nats-server this test starts, kills and starts again.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use quartet_e2e::external;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    time::timeout,
};

use crate::member::DEADLINE;

/// The NATS server binary the test runs (Debian's `nats-server` package).
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A nats-server with JetStream for this test alone: a free port and a store
/// in a temporary directory, both kept across restarts.
pub(crate) struct Broker {
    pub(crate) port: u16,
    pub(crate) store: PathBuf,
    pub(crate) process: Option<Child>,
}

impl Broker {
    /// Starts it, or `None` after a visible SKIPPED line when nats-server is
    /// not installed (under `CI=true` a missing binary fails instead).
    pub(crate) async fn start() -> Option<Self> {
        if !Path::new(NATS_SERVER).exists() {
            let missing = format!("{NATS_SERVER} is not installed");
            external::skip("chat through a broker restart", &missing);
            return None;
        }
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let store = std::env::temp_dir().join(format!("quartet-chat-nats-{}", nuid::next()));
        let mut broker = Self {
            port,
            store,
            process: None,
        };
        broker.run().await;
        Some(broker)
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts nats-server and waits until it logs that it is ready (after
    /// JetStream has recovered the store and it listens for clients).
    pub(crate) async fn run(&mut self) {
        let mut child = Command::new(NATS_SERVER)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let ready = timeout(DEADLINE, async {
            while let Some(line) = log.next_line().await.unwrap() {
                let ready = line.contains("Server is ready");
                seen.push(line);
                if ready {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "nats-server did not come up:\n{}",
            seen.join("\n")
        );
        // Keep reading its log, so a full pipe never stalls it.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        self.process = Some(child);
    }

    /// Kills it (SIGKILL: no goodbye to its clients) and waits until it is
    /// gone.
    pub(crate) async fn kill(&mut self) {
        let mut child = self.process.take().unwrap();
        child.start_kill().unwrap();
        timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.process {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

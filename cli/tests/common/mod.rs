//! What the tests of the `quartet` binary share: servers on port 0, the binary
//! with none of the machine's QUARTET_* settings leaking in, a finished run's
//! exit code and output, and a running process read line by line.

// Each test file uses a part of this module; the rest is dead code there.
#![allow(dead_code)]

use std::{net::SocketAddr, process::Stdio};

use quartet_runtime::{GrpcServer, RunningServer, ServerOptions, Shutdown};
use quartet_transform::TransformHandler;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    time::timeout,
};

pub(crate) use quartet_e2e::DEADLINE;

/// Every service address the CLI knows.
pub(crate) const ADDRESS_VARIABLES: [&str; 4] = [
    "QUARTET_TRANSFORM_ADDR",
    "QUARTET_DATABASE_ADDR",
    "QUARTET_WEATHER_ADDR",
    "QUARTET_CHAT_ADDR",
];

/// Serves `server` on `addr` (port 0 picks a free one) until stopped.
pub(crate) async fn serve(server: GrpcServer, addr: SocketAddr) -> RunningServer {
    server.spawn_on(addr).await.unwrap()
}

/// A transform server on a free port.
pub(crate) async fn transform_server(options: ServerOptions) -> RunningServer {
    serve(
        quartet_transform::server(options, Shutdown::new(), TransformHandler::default()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
}

/// The URL of a server that has stopped: nothing answers there.
pub(crate) async fn stopped_server_url() -> String {
    let server = transform_server(ServerOptions::default()).await;
    let url = server.url();
    server.stop().await.unwrap();
    url
}

/// The client settings besides addresses a machine may have in its
/// environment.
const CLIENT_VARIABLES: [&str; 7] = [
    "QUARTET_OUTPUT",
    "QUARTET_TIMEOUT",
    "QUARTET_TOKEN",
    "QUARTET_TLS_CA",
    "QUARTET_TLS_CLIENT_CERT",
    "QUARTET_TLS_CLIENT_KEY",
    "QUARTET_TLS_SERVER_NAME",
];

/// Every listener `quartet serve all` opens, each on a port of 127.0.0.1
/// the system picks, data in `data`: the arguments after `serve all`.
pub(crate) fn every_listener_on_any_port(data: &std::path::Path) -> Vec<String> {
    let flags = [
        "--transform-listen",
        "--database-listen",
        "--weather-listen",
        "--chat-listen",
        "--transform-text-listen",
        "--database-text-listen",
        "--weather-text-listen",
        "--chat-text-listen",
        "--chat-udp-listen",
        "--web-listen",
    ];
    let mut args: Vec<String> = flags
        .iter()
        .flat_map(|flag| [(*flag).to_owned(), "127.0.0.1:0".to_owned()])
        .collect();
    args.extend(["--data-dir".to_owned(), data.display().to_string()]);
    args
}

/// The CLI with none of the machine's QUARTET_* client settings (output
/// format, timeout, credentials, service addresses), stdin closed, killed
/// when dropped.
pub(crate) fn quartet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quartet"));
    command.stdin(Stdio::null()).kill_on_drop(true);
    for variable in CLIENT_VARIABLES.iter().chain(&ADDRESS_VARIABLES) {
        command.env_remove(variable);
    }
    command
}

/// [`quartet`] with every service address pointed at `url`, so nothing on
/// the machine's default ports leaks into a test.
pub(crate) fn quartet_at(url: &str) -> Command {
    let mut command = quartet();
    for variable in ADDRESS_VARIABLES {
        command.env(variable, url);
    }
    command
}

/// What a finished run left: its exit code and its output.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from_output(output: std::process::Output, stdout_before: String) -> Self {
        Self {
            code: output.status.code(),
            stdout: stdout_before + &String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Asserts a call failed as scripts see it: exit code 1, and stderr
    /// starting `error: ` then `status` (a code, maybe with its message's start).
    pub(crate) fn assert_failed(&self, status: &str) {
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        let expected = format!("error: {status}");
        assert!(self.stderr.starts_with(&expected), "{}", self.stderr);
    }

    /// Asserts stderr says `text`, somewhere.
    pub(crate) fn assert_stderr_has(&self, text: &str) {
        assert!(self.stderr.contains(text), "{}", self.stderr);
    }

    /// Asserts the run succeeded and printed exactly `stdout`.
    pub(crate) fn assert_printed(&self, stdout: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str()),
            (Some(0), stdout),
            "{}",
            self.stderr
        );
    }

    /// Stdout as JSON, for `--output json` runs that print one object.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim_end()).unwrap()
    }

    /// Stdout as JSON lines, for `--output json` runs that print many.
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        let lines = self.stdout.lines();
        lines
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Runs `command` to its end (within [`DEADLINE`]).
pub(crate) async fn run(command: &mut Command) -> Run {
    let output = timeout(DEADLINE, command.output())
        .await
        .expect("quartet hung")
        .unwrap();
    Run::from_output(output, String::new())
}

/// Runs `command` to its end with `input` on stdin, written while its output
/// is read (so neither pipe fills up and stalls the other).
pub(crate) async fn run_with_stdin(command: &mut Command, input: impl Into<Vec<u8>>) -> Run {
    let mut process = Process::spawn(command);
    let mut stdin = process.stdin.take().unwrap();
    let input = input.into();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let run = process.finish().await;
    writer.await.unwrap();
    run
}

/// A `quartet` process a test talks with while it runs: its stdin, and its
/// stdout line by line as it comes.
pub(crate) struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Process {
    /// Starts `command` with stdin, stdout and stderr piped.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line on stdout; fails the test when none comes within
    /// [`DEADLINE`] or stdout ends.
    pub(crate) async fn next_line(&mut self) -> String {
        timeout(DEADLINE, self.stdout.next_line())
            .await
            .expect("no output")
            .unwrap()
            .expect("output ended")
    }

    /// Writes `input` on stdin, as typed or piped.
    pub(crate) async fn write(&mut self, input: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().expect("stdin is closed");
        stdin.write_all(input.as_ref()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Closes stdin, waits for the exit (within [`DEADLINE`]), and returns
    /// the exit code, the stdout not read yet, and stderr.
    pub(crate) async fn finish(self) -> Run {
        let Self {
            child,
            stdin,
            stdout,
        } = self;
        drop(stdin);
        // What the line reader holds, then the rest, byte for byte.
        let mut stdout = stdout.into_inner();
        let mut rest = String::new();
        let (read, output) = timeout(DEADLINE, async {
            tokio::join!(stdout.read_to_string(&mut rest), child.wait_with_output())
        })
        .await
        .expect("quartet did not exit");
        read.unwrap();
        Run::from_output(output.unwrap(), rest)
    }
}

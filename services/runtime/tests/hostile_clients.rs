//! Clients no gRPC library would be: they walk away from calls, send broken
//! framing, or call thousands of made-up methods. Each speaks raw HTTP/2 (the
//! `h2` crate) over a real socket, so the server meets exactly the frames a
//! hostile or broken client sends; the tests then read the server's answer, its
//! metrics and its logs.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod probe;

use std::{collections::BTreeMap, net::SocketAddr, pin::Pin, time::Duration};

use bytes::Bytes;
use h2::{
    Reason,
    client::{ResponseFuture, SendRequest},
};
use probe::{LogBuffer, Probe, say, start};
use quartet_e2e::{DEADLINE, grpc::within};
use quartet_proto::{
    chat::v1::{
        ClientEvent, GetHistoryRequest, GetHistoryResponse, ListRoomsRequest, ListRoomsResponse,
        ServerEvent,
        chat_service_server::{ChatService, ChatServiceServer},
    },
    transform::v1::transform_service_server::SERVICE_NAME,
};
use quartet_runtime::{GrpcServer, Metrics, ServerOptions, Shutdown};
use tokio::{net::TcpStream, task::JoinHandle, time::Instant};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

const UNARY: &str = "Transform";
const STREAM: &str = "TransformStream";

/// How a client walks away from a call it started.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// Closes the TCP connection, with no GOAWAY or reset first: a client that
    /// crashed or lost its network.
    CloseConnection,
    /// Sends RST_STREAM(CANCEL): a client whose caller gave up (a deadline, a
    /// user pressing Ctrl-C).
    ResetStream,
}

const EVERY_LEAVE: [Leave; 2] = [Leave::CloseConnection, Leave::ResetStream];

/// One HTTP/2 connection to a server, driven by a task of its own.
struct RawConnection {
    calls: SendRequest<Bytes>,
    driver: JoinHandle<()>,
}

/// A call in progress on a [`RawConnection`].
struct RawCall {
    answer: ResponseFuture,
    requests: h2::SendStream<Bytes>,
}

impl RawConnection {
    async fn open(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (calls, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(async move {
            // Ends with an error when a test cuts the connection; that is the point.
            let _ = connection.await;
        });
        Self { calls, driver }
    }

    /// Sends a call's headers to `path`; with `end_of_stream`, the call ends
    /// there, with no message at all.
    async fn start(&mut self, path: &str, end_of_stream: bool) -> RawCall {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let mut calls = self.calls.clone().ready().await.unwrap();
        let (answer, requests) = calls.send_request(request, end_of_stream).unwrap();
        RawCall { answer, requests }
    }

    /// Closes the socket at once, as a crashed client would.
    async fn close(self) {
        self.driver.abort();
        // The driver owns the socket: once it is gone, so is the connection.
        let _ = self.driver.await;
    }
}

impl RawCall {
    fn send(&mut self, bytes: Vec<u8>, end_of_stream: bool) {
        self.requests
            .send_data(Bytes::from(bytes), end_of_stream)
            .unwrap();
    }

    /// The answer's `grpc-status` and `grpc-message`, from a trailers-only
    /// response or from the trailers after the messages.
    async fn status(self) -> (String, String) {
        within(self.read_status()).await
    }

    async fn read_status(self) -> (String, String) {
        let (head, mut body) = self.answer.await.unwrap().into_parts();
        let trailers = if head.headers.contains_key("grpc-status") {
            head.headers
        } else {
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
            }
            body.trailers().await.unwrap().expect("no trailers")
        };
        let text = |name: &str| {
            trailers
                .get(name)
                .map(|value| percent_decoded(value.as_bytes()))
                .unwrap_or_default()
        };
        (text("grpc-status"), text("grpc-message"))
    }
}

/// A header value with its `%XX` escapes (as `grpc-message` carries them) decoded.
fn percent_decoded(value: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&first, tail)) = rest.split_first() {
        if let (b'%', [high, low, after @ ..]) = (first, tail) {
            let hex = [*high, *low];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            rest = after;
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn path(method: &str) -> String {
    format!("/{SERVICE_NAME}/{method}")
}

/// A gRPC message: the 5-byte prefix (not compressed, length) and `payload`.
fn message(payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn request(text: &str) -> Vec<u8> {
    message(&prost::Message::encode_to_vec(&say(text)))
}

/// The first bytes of a message whose prefix promises 100 bytes: what a client
/// sends before it walks away, or all it sends before END_STREAM.
fn message_cut_short() -> Vec<u8> {
    let mut bytes = message(&[0xAB; 100]);
    bytes.truncate(15);
    bytes
}

/// The labels of `method` in the call metrics.
fn labels(method: &str) -> String {
    format!(r#"grpc_service="{SERVICE_NAME}",grpc_method="{method}""#)
}

/// `grpc_server_handled_total` of `method`, by code.
fn handled(text: &str, method: &str) -> BTreeMap<String, u64> {
    let prefix = format!("grpc_server_handled_total{{{},grpc_code=\"", labels(method));
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (code, count) = rest.split_once("\"} ").unwrap();
            (code.to_owned(), count.parse().unwrap())
        })
        .collect()
}

/// Polls the metrics until `ready` holds of their text, within the deadline.
async fn metrics_until(metrics: &Metrics, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = metrics.encode();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never saw {what} in\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the server has a call to `method` in flight: its headers have
/// been read and the call handed to the service.
async fn until_in_flight(metrics: &Metrics, method: &str) {
    let line = format!("grpc_server_in_flight{{{}}} 1", labels(method));
    metrics_until(metrics, &line, |text| text.contains(&line)).await;
}

/// Waits until `count` calls to `method` have finished, and returns how they
/// ended, by code.
async fn finished_calls(metrics: &Metrics, method: &str, count: u64) -> BTreeMap<String, u64> {
    let what = format!("{count} finished calls to {method}");
    let text = metrics_until(metrics, &what, |text| {
        handled(text, method).values().sum::<u64>() >= count
    })
    .await;
    handled(&text, method)
}

/// Asserts what every abandoned call must leave behind: CANCELLED in the
/// metrics and in the call span and its DEBUG line, and no server fault
/// anywhere (no UNKNOWN or INTERNAL series, no WARN line).
fn assert_recorded_as_cancelled(metrics: &Metrics, logs: &LogBuffer, method: &str, calls: u64) {
    let text = metrics.encode();
    assert_eq!(
        handled(&text, method),
        BTreeMap::from([("CANCELLED".to_owned(), calls)]),
        "\n{text}"
    );
    for fault in ["UNKNOWN", "INTERNAL"] {
        assert!(
            !text.contains(&format!("grpc_code=\"{fault}\"")),
            "{fault} series in\n{text}"
        );
    }
    let lines = logs.lines();
    assert!(
        !lines.iter().any(|line| line.contains(" WARN ")),
        "{lines:#?}"
    );
    let method_field = format!("method=\"{}\"", path(method));
    let debug_lines = lines
        .iter()
        .filter(|line| {
            line.contains(" DEBUG ")
                && line.contains(&method_field)
                && line.contains("call{")
                && line.contains("code=\"CANCELLED\"")
        })
        .count();
    assert_eq!(debug_lines, usize::try_from(calls).unwrap(), "{lines:#?}");
}

/// Walks away from `call`; returns the connection when it stays open (the
/// caller keeps it until the server has counted the call).
async fn leave(connection: RawConnection, mut call: RawCall, how: Leave) -> Option<RawConnection> {
    match how {
        Leave::CloseConnection => {
            connection.close().await;
            None
        }
        Leave::ResetStream => {
            call.requests.send_reset(Reason::CANCEL);
            Some(connection)
        }
    }
}

/// How far a call gets before its client walks away.
#[derive(Debug, Clone, Copy)]
enum Progress {
    /// Its headers are sent, and no message.
    Headers,
    /// Part of its one message is sent.
    HalfAMessage,
    /// One message is sent and its echo received (a stream).
    FirstAnswer,
}

impl Progress {
    /// Starts a call to `method` and brings it this far.
    async fn reach(
        self,
        connection: &mut RawConnection,
        method: &str,
        metrics: &Metrics,
    ) -> RawCall {
        let mut call = connection.start(&path(method), false).await;
        match self {
            Self::Headers => until_in_flight(metrics, method).await,
            Self::HalfAMessage => {
                call.send(message_cut_short(), false);
                until_in_flight(metrics, method).await;
            }
            Self::FirstAnswer => {
                call.send(request("ping"), false);
                let response = within(&mut call.answer).await.unwrap();
                let echo = within(response.into_body().data()).await.unwrap().unwrap();
                assert!(echo.ends_with(b"ping"), "{echo:?}");
            }
        }
        call
    }
}

/// Abandons a call to `method` brought to `progress`, once in every way a
/// client can walk away, and checks each is recorded as CANCELLED and nothing
/// as a fault. Runs on the test's one thread, so the log capture sees the
/// server's tasks too.
async fn abandoning_cancels(method: &str, progress: Progress) {
    let (logs, _guard) = LogBuffer::capture("info,quartet::call=debug");
    let server = start(ServerOptions::default(), Probe::default()).await;
    let metrics = server.metrics().clone();

    for (done, how) in (1..).zip(EVERY_LEAVE) {
        let mut connection = RawConnection::open(server.local_addr()).await;
        let call = progress.reach(&mut connection, method, &metrics).await;
        let _open = leave(connection, call, how).await;
        let codes = finished_calls(&metrics, method, done).await;
        assert_eq!(codes.get("CANCELLED"), Some(&done), "{how:?}: {codes:?}");
    }
    assert_recorded_as_cancelled(&metrics, &logs, method, 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_unary_call_abandoned_before_its_message_is_cancelled() {
    abandoning_cancels(UNARY, Progress::Headers).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_unary_call_abandoned_in_the_middle_of_its_message_is_cancelled() {
    abandoning_cancels(UNARY, Progress::HalfAMessage).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_stream_abandoned_after_its_first_answer_is_cancelled() {
    abandoning_cancels(STREAM, Progress::FirstAnswer).await;
}

#[tokio::test]
async fn a_unary_call_without_a_message_is_invalid_argument() {
    let server = start(ServerOptions::default(), Probe::default()).await;
    let metrics = server.metrics().clone();
    let mut connection = RawConnection::open(server.local_addr()).await;

    // END_STREAM on the headers, then on an empty DATA frame.
    let headers_only = connection.start(&path(UNARY), true).await;
    let mut empty_data = connection.start(&path(UNARY), false).await;
    empty_data.send(Vec::new(), true);
    for call in [headers_only, empty_data] {
        let (code, message) = call.status().await;
        assert_eq!(code, "3", "INVALID_ARGUMENT expected: {message}");
        assert!(message.contains("no request message"), "{message}");
    }
    let codes = finished_calls(&metrics, UNARY, 2).await;
    assert_eq!(codes, BTreeMap::from([("INVALID_ARGUMENT".to_owned(), 2)]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_truncated_message_is_invalid_argument() {
    let server = start(ServerOptions::default(), Probe::default()).await;
    let metrics = server.metrics().clone();
    let mut connection = RawConnection::open(server.local_addr()).await;

    // The prefix promises more bytes than come before END_STREAM, or the stream
    // ends inside the prefix itself.
    let mut short_payload = connection.start(&path(UNARY), false).await;
    short_payload.send(message_cut_short(), true);
    let mut short_prefix = connection.start(&path(UNARY), false).await;
    short_prefix.send(message_cut_short()[..3].to_vec(), true);
    for call in [short_payload, short_prefix] {
        let (code, message) = call.status().await;
        assert_eq!(code, "3", "INVALID_ARGUMENT expected: {message}");
        assert!(message.contains("truncated"), "{message}");
    }

    // On a stream, the whole messages before it are answered first.
    let mut stream = connection.start(&path(STREAM), false).await;
    let mut bytes = request("whole");
    bytes.extend(message_cut_short());
    stream.send(bytes, true);
    let (code, message) = stream.status().await;
    assert_eq!(code, "3", "INVALID_ARGUMENT expected: {message}");
    assert!(message.contains("truncated"), "{message}");

    assert_eq!(
        finished_calls(&metrics, UNARY, 2).await,
        BTreeMap::from([("INVALID_ARGUMENT".to_owned(), 2)])
    );
    assert_eq!(
        finished_calls(&metrics, STREAM, 1).await,
        BTreeMap::from([("INVALID_ARGUMENT".to_owned(), 1)])
    );
    server.stop().await.unwrap();
}

/// A chat service that only listens: its stream ends when the client's does,
/// and passes on any error of the client's stream. (The probe's own stream
/// never ends, so it cannot show how an empty client stream ends.)
#[derive(Debug, Clone, Copy)]
struct Listener;

#[tonic::async_trait]
impl ChatService for Listener {
    type ChatStream = Pin<Box<dyn Stream<Item = Result<ServerEvent, Status>> + Send>>;

    async fn chat(
        &self,
        request: Request<Streaming<ClientEvent>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let errors = request
            .into_inner()
            .filter_map(|event| event.err().map(Err));
        Ok(Response::new(Box::pin(errors)))
    }

    async fn list_rooms(
        &self,
        _: Request<ListRoomsRequest>,
    ) -> Result<Response<ListRoomsResponse>, Status> {
        Err(Status::unimplemented("a listener lists nothing"))
    }

    async fn get_history(
        &self,
        _: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        Err(Status::unimplemented("a listener keeps nothing"))
    }
}

/// Only unary requests must carry a message: a client stream may be empty.
#[tokio::test]
async fn a_client_stream_may_end_without_any_message() {
    let server = GrpcServer::new("listener", ServerOptions::default(), Shutdown::new())
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(ChatServiceServer::new(Listener))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let mut connection = RawConnection::open(server.local_addr()).await;

    let call = connection
        .start("/quartet.chat.v1.ChatService/Chat", true)
        .await;
    let (code, message) = call.status().await;
    assert_eq!(code, "0", "OK expected: {message}");
    server.stop().await.unwrap();
}

/// A path of `len` characters that no server serves, different for each `seed`.
fn made_up_path(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut path = String::from("/probe.");
    while path.len() < len {
        // xorshift64: random enough to defeat any prefix sharing.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        path.push(char::from(ALPHABET[usize::try_from(state % 64).unwrap()]));
        if path.len() == len / 2 {
            path.push('/');
        }
    }
    path
}

// One thread, so the log capture sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn made_up_methods_cannot_grow_the_scrape_or_the_logs() {
    const PATHS: u64 = 400;
    const PATH_LEN: usize = 8 * 1024;
    let (logs, _guard) = LogBuffer::capture("info,quartet::call=debug");
    let server = start(ServerOptions::default(), Probe::default()).await;
    let metrics = server.metrics().clone();
    let mut connection = RawConnection::open(server.local_addr()).await;

    let paths: Vec<String> = (0..PATHS)
        .map(|seed| made_up_path(seed, PATH_LEN))
        .collect();
    for path in &paths {
        let (code, _) = connection.start(path, true).await.status().await;
        assert_eq!(code, "12", "UNIMPLEMENTED expected");
    }
    // A served method still has its own series.
    let mut call = connection.start(&path(UNARY), false).await;
    call.send(request("known"), true);
    assert_eq!(call.status().await.0, "0");

    let text = metrics.encode();
    assert!(text.len() < 100 * 1024, "a scrape of {} bytes", text.len());
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 300, "a scrape line of {longest} characters");
    assert!(
        text.contains(&format!(
            r#"grpc_server_handled_total{{grpc_service="unknown",grpc_method="unknown",grpc_code="UNIMPLEMENTED"}} {PATHS}"#
        )),
        "{text}"
    );
    assert_eq!(
        handled(&text, UNARY),
        BTreeMap::from([("OK".to_owned(), 1)])
    );

    // Logs name a made-up path by a short prefix only.
    let lines = logs.lines();
    for path in &paths {
        let whole_enough = &path[..100];
        assert!(
            !lines.iter().any(|line| line.contains(whole_enough)),
            "a log line carries more than a prefix of {whole_enough}..."
        );
    }
    let abbreviated = format!("{}…", &paths[0][..64]);
    assert!(
        lines.iter().any(|line| line.contains(&abbreviated)),
        "no line names the path as {abbreviated}: {:#?}",
        &lines[..lines.len().min(5)]
    );
    server.stop().await.unwrap();
}

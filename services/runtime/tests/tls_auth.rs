//! TLS, mutual TLS, certificate reload and bearer tokens, over real sockets with
//! certificates made at test time.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod probe;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use probe::{LogBuffer, Probe, say, start};
use quartet_e2e::{DEADLINE, grpc::within};
use quartet_proto::transform::v1::transform_service_client::TransformServiceClient;
use quartet_runtime::{RunningServer, ServerOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio::time::Instant;
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A certificate authority made for one test.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.as_ref().pem()
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn write_server_files(dir: &Path, leaf: &Leaf) {
    std::fs::write(dir.join("server.crt"), &leaf.cert).unwrap();
    std::fs::write(dir.join("server.key"), &leaf.key).unwrap();
}

/// A directory holding a server certificate for localhost signed by `ca`, and
/// its key.
fn server_files(ca: &Authority) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_server_files(
        dir.path(),
        &ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth),
    );
    dir
}

fn tls_options(dir: &Path, client_ca: Option<&Authority>) -> ServerOptions {
    let mut options = ServerOptions::default();
    options.tls.tls_cert = Some(dir.join("server.crt"));
    options.tls.tls_key = Some(dir.join("server.key"));
    options.reload_interval = Duration::from_millis(100);
    if let Some(ca) = client_ca {
        std::fs::write(dir.join("clients.crt"), ca.pem()).unwrap();
        options.tls.tls_client_ca = Some(dir.join("clients.crt"));
    }
    options
}

/// Calls the server over TLS trusting `ca`, optionally with a client certificate.
async fn call_over_tls(port: u16, ca: &Authority, client: Option<&Leaf>) -> Result<String, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = client {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    let answer = TransformServiceClient::new(channel)
        .transform(say("over tls"))
        .await
        .map_err(|status| format!("call: {status:?}"))?;
    Ok(answer.into_inner().text)
}

#[tokio::test]
async fn tls_serves_encrypted_calls_and_refuses_plaintext() {
    let ca = Authority::new("test ca");
    let dir = server_files(&ca);
    let server = start(tls_options(dir.path(), None), Probe::default()).await;
    let port = server.local_addr().port();

    assert_eq!(
        within(call_over_tls(port, &ca, None)).await.unwrap(),
        "over tls"
    );

    let plaintext = within(async {
        let channel = Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await?;
        let answer = TransformServiceClient::new(channel)
            .transform(say("plain"))
            .await;
        Ok::<_, tonic::transport::Error>(answer)
    })
    .await;
    assert!(
        !matches!(plaintext, Ok(Ok(_))),
        "a plaintext call must not be served: {plaintext:?}"
    );

    let stranger = Authority::new("another ca");
    assert!(
        call_over_tls(port, &stranger, None).await.is_err(),
        "a client must not trust a foreign CA"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let servers = Authority::new("server ca");
    let clients = Authority::new("client ca");
    let dir = server_files(&servers);
    let server = start(tls_options(dir.path(), Some(&clients)), Probe::default()).await;
    let port = server.local_addr().port();

    let member = clients.leaf("alice", ExtendedKeyUsagePurpose::ClientAuth);
    assert_eq!(
        call_over_tls(port, &servers, Some(&member)).await.unwrap(),
        "over tls"
    );

    let anonymous = call_over_tls(port, &servers, None).await;
    assert!(
        anonymous.is_err(),
        "no client certificate must be refused: {anonymous:?}"
    );

    let outsider = Authority::new("other").leaf("mallory", ExtendedKeyUsagePurpose::ClientAuth);
    let refused = call_over_tls(port, &servers, Some(&outsider)).await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must be refused: {refused:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let old = Authority::new("old ca");
    let dir = server_files(&old);
    let server = start(tls_options(dir.path(), None), Probe::default()).await;
    let port = server.local_addr().port();
    call_over_tls(port, &old, None).await.unwrap();

    // Rotate as Kubernetes does: new files in place.
    let new = Authority::new("new ca");
    write_server_files(
        dir.path(),
        &new.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth),
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        if call_over_tls(port, &new, None).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        call_over_tls(port, &old, None).await.is_err(),
        "the old certificate is retired"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_broken_certificate_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let bound = quartet_runtime::GrpcServer::new(
        "probe",
        tls_options(dir.path(), None),
        quartet_runtime::Shutdown::new(),
    )
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let error = bound.spawn().unwrap_err().to_string();
    assert!(error.contains("server.crt"), "{error}");
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn bearer_tokens_guard_every_call_but_health_and_rotate_with_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# ops team\nfirst-token\nsecond-token\n").unwrap();
    let mut options = ServerOptions::default();
    options.auth.auth_token_file = Some(tokens.clone());
    options.reload_interval = Duration::from_millis(100);
    let server = start(options, Probe::default()).await;
    let channel = probe::channel(&server).await;
    let mut client = TransformServiceClient::new(channel.clone());

    let missing = client.transform(say("x")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let wrong = client
        .transform(with_token(say("x"), "guess"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    for token in ["first-token", "second-token"] {
        let answer = client
            .transform(with_token(say("ok"), token))
            .await
            .unwrap();
        assert_eq!(answer.into_inner().text, "ok");
    }
    // Probes carry no token.
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    std::fs::write(&tokens, "third-token\n").unwrap();
    until_token(&mut client, "third-token", true).await;
    let retired = client
        .transform(with_token(say("x"), "first-token"))
        .await
        .unwrap_err();
    assert_eq!(retired.code(), Code::Unauthenticated);
    server.stop().await.unwrap();
}

/// Replaces `path` with `content` at once, as Kubernetes updates a mounted
/// Secret, so the server never reads a half-written file.
fn replace_file(path: &Path, content: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A server guarding its calls with the tokens of a file, re-read every 50ms,
/// and a client of it.
struct Guarded {
    /// The token file (in a directory of its own), which tests change.
    tokens: PathBuf,
    _dir: tempfile::TempDir,
    server: RunningServer,
    client: TransformServiceClient<Channel>,
}

impl Guarded {
    /// Starts with `tokens` in the file, or with no file at all.
    async fn start(tokens: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        if let Some(tokens) = tokens {
            std::fs::write(&path, tokens).unwrap();
        }
        let mut options = ServerOptions::default();
        options.auth.auth_token_file = Some(path.clone());
        options.reload_interval = Duration::from_millis(50);
        let server = start(options, Probe::default()).await;
        let client = TransformServiceClient::new(probe::channel(&server).await);
        Self {
            tokens: path,
            _dir: dir,
            server,
            client,
        }
    }

    /// Asserts that the server failed closed: it still answers health, and
    /// said so once in `logs` (once for the change, not once per refused call).
    async fn assert_failed_closed_once(&self, logs: &LogBuffer) {
        health_answers(&self.server).await;
        assert_eq!(
            failed_closed(logs, &self.tokens).len(),
            1,
            "{:#?}",
            logs.lines()
        );
    }
}

/// Calls with `token` until it is `accepted` (or refused UNAUTHENTICATED),
/// within the deadline: the server sees a changed file at its next reload.
async fn until_token(client: &mut TransformServiceClient<Channel>, token: &str, accepted: bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match client.transform(with_token(say("x"), token)).await {
            Ok(_) if accepted => return,
            Err(status) if !accepted && status.code() == Code::Unauthenticated => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{token} was never {}",
            if accepted { "accepted" } else { "refused" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ERROR lines that say the token file failed closed.
fn failed_closed(logs: &LogBuffer, tokens: &Path) -> Vec<String> {
    logs.lines()
        .into_iter()
        .filter(|line| {
            line.contains(" ERROR ")
                && line.contains(&tokens.display().to_string())
                && line.contains("every call but health is refused")
        })
        .collect()
}

async fn health_answers(server: &RunningServer) {
    HealthClient::new(probe::channel(server).await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn emptying_the_token_file_revokes_every_token_until_it_lists_some_again() {
    let (logs, _guard) = LogBuffer::capture("error");
    let mut guarded = Guarded::start(Some("first-token\n")).await;
    until_token(&mut guarded.client, "first-token", true).await;

    replace_file(&guarded.tokens, "");
    for _ in 0..6 {
        until_token(&mut guarded.client, "first-token", false).await;
    }
    guarded.assert_failed_closed_once(&logs).await;

    replace_file(&guarded.tokens, "# rotated\nsecond-token\n");
    until_token(&mut guarded.client, "second-token", true).await;
    until_token(&mut guarded.client, "first-token", false).await;
    guarded.server.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_the_token_file_revokes_every_token_until_it_returns() {
    let (logs, _guard) = LogBuffer::capture("error");
    let mut guarded = Guarded::start(Some("first-token\n")).await;
    until_token(&mut guarded.client, "first-token", true).await;

    std::fs::remove_file(&guarded.tokens).unwrap();
    until_token(&mut guarded.client, "first-token", false).await;
    guarded.assert_failed_closed_once(&logs).await;

    replace_file(&guarded.tokens, "first-token\n");
    until_token(&mut guarded.client, "first-token", true).await;
    guarded.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_whose_token_file_is_missing_starts_and_refuses_every_token() {
    let (logs, _guard) = LogBuffer::capture("error");
    let mut guarded = Guarded::start(None).await;

    let refused = guarded
        .client
        .transform(with_token(say("x"), "any-token"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    guarded.assert_failed_closed_once(&logs).await;

    replace_file(&guarded.tokens, "late-token\n");
    until_token(&mut guarded.client, "late-token", true).await;
    guarded.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_tls_server_answers_plaintext_probes_on_its_health_port() {
    let ca = Authority::new("probe ca");
    let dir = server_files(&ca);
    let mut options = tls_options(dir.path(), None);
    options.health_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(options, Probe::default()).await;

    // What Kubernetes' gRPC probe does: plaintext Check on the health port.
    let health_url = format!("http://{}", server.health_addr().unwrap());
    let channel = Channel::from_shared(health_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
    // Only health lives there: the service stays behind TLS.
    let refused = TransformServiceClient::new(channel)
        .transform(say("x"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    assert_eq!(
        call_over_tls(server.local_addr().port(), &ca, None)
            .await
            .unwrap(),
        "over tls"
    );
    server.stop().await.unwrap();
}

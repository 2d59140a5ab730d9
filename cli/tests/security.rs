//! The client's credentials flags against a transform server that asks for
//! them: a bearer token, and TLS with a client certificate (mutual TLS).

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quartet_runtime::ServerOptions;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

use common::{quartet, quartet_at, run, transform_server};

#[tokio::test]
async fn the_token_flag_authenticates_calls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "s3cret\n").unwrap();
    let mut options = ServerOptions::default();
    options.auth.auth_token_file = Some(dir.path().join("tokens"));
    let server = transform_server(options).await;

    let refused = run(quartet_at(&server.url()).args(["transform", "upper", "hi"])).await;
    refused.assert_failed("UNAUTHENTICATED: ");
    let allowed = run(quartet_at(&server.url())
        .env("QUARTET_TOKEN", "s3cret")
        .args(["transform", "upper", "hi"]))
    .await;
    allowed.assert_printed("HI\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_tls_flags_reach_a_mutual_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(path("ca.pem"), ca.as_ref().pem()).unwrap();
    for (name, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        std::fs::write(
            path(&format!("{name}.pem")),
            params.signed_by(&key, &ca).unwrap().pem(),
        )
        .unwrap();
        std::fs::write(path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    let mut options = ServerOptions::default();
    options.tls.tls_cert = Some(path("server.pem"));
    options.tls.tls_key = Some(path("server.key"));
    options.tls.tls_client_ca = Some(path("ca.pem"));
    let server = transform_server(options).await;
    let address = format!("https://127.0.0.1:{}", server.local_addr().port());

    let mut call = quartet();
    call.args([
        "--transform-addr",
        &address,
        "--tls-server-name",
        "localhost",
        "--tls-ca",
    ])
    .arg(path("ca.pem"))
    .arg("--tls-client-cert")
    .arg(path("client.pem"))
    .arg("--tls-client-key")
    .arg(path("client.key"))
    .args(["transform", "reverse", "abc"]);
    let answer = run(&mut call).await;
    answer.assert_printed("cba\n");

    let mut anonymous = quartet();
    anonymous
        .args([
            "--transform-addr",
            &address,
            "--tls-server-name",
            "localhost",
            "--timeout",
            "5s",
            "--tls-ca",
        ])
        .arg(path("ca.pem"))
        .args(["transform", "reverse", "abc"]);
    let refused = run(&mut anonymous).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    server.stop().await.unwrap();
}

//! The transform service over real sockets: a server on port 0 and the generated
//! tonic client, as a user would call it.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use quartet_e2e::grpc::{assert_status, failure, next, open_stream, within};
use quartet_proto::transform::v1::{
    Operation, TransformRequest, TransformResponse,
    transform_service_client::TransformServiceClient,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use quartet_transform::TransformHandler;
use tonic::{Code, transport::Channel};

async fn start(options: ServerOptions) -> RunningServer {
    quartet_transform::server(options, Shutdown::new(), TransformHandler::default())
        .spawn_on("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn client(server: &RunningServer) -> TransformServiceClient<Channel> {
    TransformServiceClient::connect(server.url())
        .await
        .unwrap()
        // The server enforces the limit; the client must not refuse first.
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(64 * 1024 * 1024)
}

fn request(operation: Operation, text: &str) -> TransformRequest {
    TransformRequest {
        operation: operation.into(),
        text: text.to_owned(),
    }
}

async fn call(
    client: &mut TransformServiceClient<Channel>,
    request: TransformRequest,
) -> Result<String, tonic::Status> {
    within(client.transform(request))
        .await
        .map(|response| response.into_inner().text)
}

#[tokio::test]
async fn each_operation_transforms_unicode_correctly() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    for (operation, text, expected) in [
        (Operation::Upper, "straße", "STRASSE"),
        (Operation::Lower, "ΣΑΣ", "σας"),
        (Operation::Reverse, "ne\u{301}e", "ee\u{301}n"),
        (Operation::Upper, "", ""),
    ] {
        let answer = call(&mut client, request(operation, text)).await.unwrap();
        assert_eq!(answer, expected, "{operation:?} of {text:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unspecified_operation_is_invalid_argument() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let status = call(&mut client, request(Operation::Unspecified, "x"))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "operation: must be set");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_operation_number_is_invalid_argument() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let status = call(
        &mut client,
        TransformRequest {
            operation: 42,
            text: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        "42 is not a known operation",
    );
    server.stop().await.unwrap();
}

/// The wire shape of `TransformRequest`, but with `text` as raw bytes, so a test
/// can send what a correct client never would: text that is not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawTransformRequest {
    #[prost(int32, tag = "1")]
    operation: i32,
    #[prost(bytes = "vec", tag = "2")]
    text: Vec<u8>,
}

#[tokio::test]
async fn text_that_is_not_utf8_is_invalid_argument() {
    let server = start(ServerOptions::default()).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();

    let request = RawTransformRequest {
        operation: Operation::Upper.into(),
        text: vec![b'o', b'k', 0xFF, 0xFE],
    };
    let path =
        http::uri::PathAndQuery::from_static("/quartet.transform.v1.TransformService/Transform");
    let codec = tonic_prost::ProstCodec::<RawTransformRequest, TransformResponse>::default();
    let status = within(grpc.unary(tonic::Request::new(request), path, codec))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "malformed");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn message_over_the_limit_is_resource_exhausted() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let big = "a".repeat(4 * 1024 * 1024 + 1);
    let status = call(&mut client, request(Operation::Upper, &big))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The connection is still good for the next call.
    assert_eq!(
        call(&mut client, request(Operation::Upper, "ok"))
            .await
            .unwrap(),
        "OK"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn message_just_under_the_limit_is_served() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    // 4 MiB minus the protobuf overhead of field 1 (2 bytes) and field 2 (1 + 4).
    let text = "a".repeat(4 * 1024 * 1024 - 7);
    let answer = call(&mut client, request(Operation::Upper, &text))
        .await
        .unwrap();
    assert_eq!(answer.len(), text.len());
    assert!(answer.bytes().all(|byte| byte == b'A'));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn result_that_outgrows_the_limit_is_resource_exhausted() {
    let mut options = ServerOptions::default();
    options.limits.max_message_bytes = 1024;
    let server = start(options).await;
    let mut client = client(&server).await;

    // "ΐ" is 2 bytes and upper-cases to 3 code points of 6 bytes: the request
    // fits, the answer does not.
    let text = "ΐ".repeat(400);
    let status = call(&mut client, request(Operation::Upper, &text))
        .await
        .unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "result");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stream_answers_thousands_of_requests_in_order() {
    const COUNT: usize = 5_000;
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let operations = [Operation::Upper, Operation::Lower, Operation::Reverse];
    let requests: Vec<TransformRequest> = (0..COUNT)
        .map(|i| request(operations[i % 3], &format!("Línea-{i}-ß")))
        .collect();
    let expected: Vec<String> = requests
        .iter()
        .map(|request| {
            let operation = quartet_transform::Operation::try_from(request.operation).unwrap();
            operation.apply(&request.text)
        })
        .collect();

    let answers = within(async {
        let mut responses = client
            .transform_stream(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut answers = Vec::with_capacity(COUNT);
        while let Some(response) = responses.message().await.unwrap() {
            answers.push(response.text);
        }
        answers
    })
    .await;
    assert_eq!(answers, expected);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stream_answers_up_to_an_invalid_request_then_fails_with_its_status() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let requests = vec![
        request(Operation::Upper, "one"),
        request(Operation::Lower, "TWO"),
        request(Operation::Unspecified, "three"),
        request(Operation::Upper, "never answered"),
    ];
    let mut responses = client
        .transform_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut responses).await.text, "ONE");
    assert_eq!(next(&mut responses).await.text, "two");
    assert_eq!(failure(&mut responses).await.code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stream_ends_with_unavailable_when_the_server_drains() {
    let server = start(ServerOptions::default()).await;
    let mut client = client(&server).await;

    let (sender, mut responses) = open_stream(|requests| client.transform_stream(requests)).await;
    sender
        .send(request(Operation::Upper, "before"))
        .await
        .unwrap();
    assert_eq!(next(&mut responses).await.text, "BEFORE");

    // The client keeps its side open; the drain must end the stream anyway.
    server.shutdown().request();
    let end = failure(&mut responses).await;
    assert_eq!(end.code(), Code::Unavailable);
    assert_eq!(
        end.message(),
        "server is shutting down; retry unanswered requests"
    );
    within(server.stopped()).await.unwrap();
    drop(sender);
}

#[tokio::test]
async fn stream_message_over_the_limit_ends_the_stream_with_resource_exhausted() {
    let mut options = ServerOptions::default();
    options.limits.max_message_bytes = 1024;
    let server = start(options).await;
    let mut client = client(&server).await;

    let requests = vec![
        request(Operation::Upper, "small"),
        request(Operation::Upper, &"x".repeat(2048)),
    ];
    let mut responses = client
        .transform_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut responses).await.text, "SMALL");
    assert_eq!(
        failure(&mut responses).await.code(),
        Code::ResourceExhausted
    );
    server.stop().await.unwrap();
}

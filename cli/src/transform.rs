//! `quartet transform upper|lower|reverse [TEXT]...`: one call for TEXT, or every
//! stdin line through one `TransformStream`, answers printed as they arrive.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use quartet_proto::transform::v1::{
    Operation as ProtoOperation, TransformRequest, transform_service_client::TransformServiceClient,
};
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    client::{ClientOptions, Connection},
    output::Printer,
};

/// Requests read ahead of the server's answers on a stream; bounds memory when
/// stdin is much faster than the server.
const READ_AHEAD: usize = 64;

#[derive(Debug, Args)]
pub(crate) struct TransformArgs {
    /// What to do to the text.
    #[arg(value_enum)]
    operation: Operation,
    /// The text; several words are joined with single spaces. Without it, every
    /// line of stdin is transformed on one stream.
    text: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Operation {
    /// Upper-case (full Unicode mapping: "straße" becomes "STRASSE").
    Upper,
    /// Lower-case.
    Lower,
    /// Reverse, keeping accents and emoji whole.
    Reverse,
}

impl From<Operation> for ProtoOperation {
    fn from(operation: Operation) -> Self {
        match operation {
            Operation::Upper => Self::Upper,
            Operation::Lower => Self::Lower,
            Operation::Reverse => Self::Reverse,
        }
    }
}

#[derive(Serialize)]
struct Answer<'a> {
    text: &'a str,
}

pub(crate) async fn run(client: &ClientOptions, args: TransformArgs) -> anyhow::Result<ExitCode> {
    let mut service = client.connect_transform().await?;
    let printer = Printer::new(client.output);
    let operation = ProtoOperation::from(args.operation);
    if args.text.is_empty() {
        transform_stdin(&mut service, operation, &printer).await?;
    } else {
        let message = TransformRequest {
            operation: operation.into(),
            text: args.text.join(" "),
        };
        let answer = client
            .read(&service, &message, |mut service, request| async move {
                service.transform(request).await
            })
            .await?;
        print_answer(&printer, &answer.text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_answer(printer: &Printer, text: &str) -> std::io::Result<()> {
    printer.print(text, &Answer { text })
}

async fn transform_stdin(
    service: &mut TransformServiceClient<Connection>,
    operation: ProtoOperation,
    printer: &Printer,
) -> anyhow::Result<()> {
    let (requests, outgoing) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_lines(operation, requests));
    let mut answers = service
        .transform_stream(ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    while let Some(answer) = answers.message().await? {
        print_answer(printer, &answer.text)?;
    }
    // The stream ended cleanly, so every line was sent; a read error still counts.
    reader.await.context("stdin reader failed")?
}

/// Sends every stdin line (without its `\n` or `\r\n`) as one request.
async fn read_lines(
    operation: ProtoOperation,
    requests: mpsc::Sender<TransformRequest>,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0_u64;
    loop {
        number += 1;
        let line = lines
            .next_line()
            .await
            .with_context(|| format!("cannot read stdin line {number}"))?;
        let Some(mut line) = line else {
            return Ok(());
        };
        if line.ends_with('\r') {
            line.pop();
        }
        let request = TransformRequest {
            operation: operation.into(),
            text: line,
        };
        if requests.send(request).await.is_err() {
            // The stream is over (the server ended it); its status is reported.
            return Ok(());
        }
    }
}

//! `quartet-chat`: the chat service on its own, as deployed.

use anyhow::Context as _;
use clap::Parser;
use quartet_chat::{ChatOptions, DEFAULT_PORT};
use quartet_runtime::{Process, ProcessOptions};

/// Serves quartet.chat.v1.ChatService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-chat", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    chat: ChatOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { process, chat } = Args::parse();
    let running = Process::start("quartet-chat", &process).await?;
    let handler = quartet_chat::handler(&chat)
        .await
        .context("cannot start the chat backplane")?;
    let server = quartet_chat::server(process.server.clone(), running.shutdown(), handler);
    Ok(running
        .serve(server, process.listen_or(DEFAULT_PORT))
        .await?)
}

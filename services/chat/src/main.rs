//! `quartet-chat`: the chat service on its own, as deployed.

use anyhow::Context as _;
use quartet_chat::DEFAULT_PORT;
use quartet_runtime::Process;

fn main() -> anyhow::Result<()> {
    // The runtime QUARTET_RUNTIME asks for (docs/operations.md).
    quartet_runtime::tokio_runtime()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let (process, options) = Process::parse("quartet-chat", ABOUT).await?;
    let handler = quartet_chat::handler(&options)
        .await
        .context("cannot start the chat backplane")?;
    Ok(process
        .host(quartet_chat::server, handler, DEFAULT_PORT)
        .await?)
}

/// What `--help` says the binary is.
const ABOUT: &str = "Serves quartet.chat.v1.ChatService with health and reflection";

//! `quartet-chat`: the chat service on its own, as deployed.

use anyhow::Context as _;
use quartet_chat::{ChatOptions, DEFAULT_PORT};
use quartet_runtime::Process;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Serves quartet.chat.v1.ChatService with health and reflection";
    let (process, options) = Process::parse::<ChatOptions>("quartet-chat", about).await?;
    let handler = quartet_chat::handler(&options)
        .await
        .context("cannot start the chat backplane")?;
    let server = quartet_chat::server(process.server_options(), process.shutdown(), handler);
    Ok(process.serve(server, DEFAULT_PORT).await?)
}

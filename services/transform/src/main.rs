//! `quartet-transform`: the transform service on its own, as deployed.

use quartet_runtime::Process;
use quartet_transform::DEFAULT_PORT;

fn main() -> anyhow::Result<()> {
    // The runtime QUARTET_RUNTIME asks for (docs/operations.md).
    quartet_runtime::tokio_runtime()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let (process, options) = Process::parse("quartet-transform", ABOUT).await?;
    let handler = quartet_transform::handler(&options).await?;
    Ok(process
        .host(quartet_transform::server, handler, DEFAULT_PORT)
        .await?)
}

/// What `--help` says the binary is.
const ABOUT: &str = "Serves quartet.transform.v1.TransformService with health and reflection";

//! `quartet-transform`: the transform service on its own, as deployed.

use clap::Parser;
use quartet_runtime::{Process, ProcessOptions};
use quartet_transform::{DEFAULT_PORT, TransformOptions};

/// Serves quartet.transform.v1.TransformService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-transform", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    transform: TransformOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { process, transform } = Args::parse();
    let running = Process::start("quartet-transform", &process).await?;
    let handler = quartet_transform::handler(&transform).await?;
    let server = quartet_transform::server(process.server.clone(), running.shutdown(), handler);
    Ok(running
        .serve(server, process.listen_or(DEFAULT_PORT))
        .await?)
}

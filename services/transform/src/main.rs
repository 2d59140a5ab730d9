//! `quartet-transform`: the transform service on its own, as deployed.

use clap::Parser;
use quartet_runtime::{Process, ProcessOptions};
use quartet_transform::DEFAULT_PORT;

/// Serves quartet.transform.v1.TransformService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-transform", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
}

fn main() -> anyhow::Result<()> {
    let Args { process: options } = Args::parse();
    quartet_runtime::tokio_runtime()?.block_on(serve(options))
}

async fn serve(options: ProcessOptions) -> anyhow::Result<()> {
    let process = Process::start("quartet-transform", &options).await?;
    let server = quartet_transform::server(options.server.clone(), process.shutdown());
    Ok(process
        .serve(server, options.listen_or(DEFAULT_PORT))
        .await?)
}

//! `quartet-database`: the people database on its own, as deployed.

use anyhow::Context as _;
use clap::Parser;
use quartet_database::{DEFAULT_PORT, StoreOptions};
use quartet_runtime::{Process, ProcessOptions};

/// Serves quartet.database.v1.PeopleService with health and reflection.
#[derive(Debug, Parser)]
#[command(name = "quartet-database", version, about)]
struct Args {
    #[command(flatten)]
    process: ProcessOptions,
    #[command(flatten)]
    store: StoreOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { process, store } = Args::parse();
    let running = Process::start("quartet-database", &process).await?;
    let handler = quartet_database::handler(&store)
        .await
        .context("cannot open the people store")?;
    let server = quartet_database::server(process.server.clone(), running.shutdown(), handler);
    Ok(running
        .serve(server, process.listen_or(DEFAULT_PORT))
        .await?)
}

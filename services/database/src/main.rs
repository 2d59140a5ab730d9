//! `quartet-database`: the people database on its own, as deployed.

use anyhow::Context as _;
use quartet_database::DEFAULT_PORT;
use quartet_runtime::Process;

fn main() -> anyhow::Result<()> {
    // The runtime QUARTET_RUNTIME asks for (docs/operations.md).
    quartet_runtime::tokio_runtime()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let (process, options) = Process::parse("quartet-database", ABOUT).await?;
    let handler = quartet_database::handler(&options)
        .await
        .context("cannot open the people store")?;
    Ok(process
        .host(quartet_database::server, handler, DEFAULT_PORT)
        .await?)
}

/// What `--help` says the binary is.
const ABOUT: &str = "Serves quartet.database.v1.PeopleService with health and reflection";

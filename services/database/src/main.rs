//! `quartet-database`: the people database on its own, as deployed.

use anyhow::Context as _;
use quartet_database::{DEFAULT_PORT, StoreOptions};
use quartet_runtime::Process;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let about = "Serves quartet.database.v1.PeopleService with health and reflection";
    let (process, options) = Process::parse::<StoreOptions>("quartet-database", about).await?;
    let handler = quartet_database::handler(&options)
        .await
        .context("cannot open the people store")?;
    let server = quartet_database::server(process.server_options(), process.shutdown(), handler);
    Ok(process.serve(server, DEFAULT_PORT).await?)
}

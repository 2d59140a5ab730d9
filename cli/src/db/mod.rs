//! `quartet db ...`: the people database from the command line.
//!
//! # Layout
//! - `crud`: create, get, update, delete and list; one call each (list pages).
//! - `watch`: changes as they happen, resumed after a disconnect.
//! - `import`: a CSV or JSON Lines file, streamed in batches.
//! - `view`: people and changes as text tables and JSON.

mod crud;
mod import;
mod view;
mod watch;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use self::crud::People;
use crate::client::ClientOptions;

#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create a person (alta).
    Create(crud::CreateArgs),
    /// Show a person (consulta).
    Get(crud::GetArgs),
    /// Change some fields of a person (modificación).
    Update(crud::UpdateArgs),
    /// Delete a person (baja).
    Delete(crud::DeleteArgs),
    /// List people ordered by id.
    List(crud::ListArgs),
    /// Print changes as they happen; reconnects by itself and resumes where it stopped.
    Watch(watch::WatchArgs),
    /// Create or replace people from a CSV (id,name,email,age) or JSON Lines file.
    Import(import::ImportArgs),
}

pub(crate) async fn run(client: &ClientOptions, args: DbArgs) -> anyhow::Result<ExitCode> {
    let service = client.connect_database().await?;
    let mut people = People { client, service };
    match args.command {
        DbCommand::Create(args) => people.create(args).await?,
        DbCommand::Get(args) => people.get(args).await?,
        DbCommand::Update(args) => people.update(args).await?,
        DbCommand::Delete(args) => people.delete(args).await?,
        DbCommand::List(args) => people.list(args).await?,
        DbCommand::Watch(args) => watch::watch(client, &mut people.service, args).await?,
        DbCommand::Import(args) => return import::import(client, &mut people.service, args).await,
    }
    Ok(ExitCode::SUCCESS)
}

//! # quartet-database
//!
//! The people database (`quartet.database.v1.PeopleService`): many clients
//! create, read, update, delete, list, watch and import people at once; every
//! acknowledged write is durable; concurrent writers never lose each other's
//! updates.
//!
//! # Layout
//! - [`person`]: the record, its fields and their validation.
//! - [`write`]: writes as values ([`WriteOp`], [`Patch`]) and the rules that decide
//!   what each does to a record; shared by both stores.
//! - [`change`]: committed changes and their revisions.
//! - [`listing`]: pages and page tokens.
//! - [`store`]: [`PeopleStore`] (group commit, change feed, watches) over a
//!   [`StoreBackend`]: [`store::redb`] (embedded, default) or [`store::postgres`]
//!   (one file per job: the pool, the schema, the batch write, reads, and the
//!   listener for other replicas' commits).
//! - [`error`]: [`DatabaseError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service to the store.
//! - This file: the shape every Quartet service shares. [`StoreOptions`] are
//!   the service's own flags; [`handler`] builds the service from them;
//!   [`server`] hosts a handler on a [`GrpcServer`] of the shared runtime.
//! - `main.rs`: the `quartet-database` binary.

pub mod change;
pub mod error;
pub mod grpc;
pub mod listing;
pub mod person;
pub mod store;
pub mod write;

use std::{path::PathBuf, sync::Arc};

use clap::Args;
use quartet_proto::{MessageLimit as _, database::v1::people_service_server::PeopleServiceServer};
use quartet_runtime::{GrpcServer, ServerOptions, Shutdown};

pub use error::DatabaseError;
pub use grpc::PeopleHandler;
pub use store::{PeopleStore, StoreBackend};
pub use write::{Patch, WriteOp};

/// The default gRPC port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 50052;

/// Where the people live.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StoreOptions {
    /// Directory of the embedded store (used unless a PostgreSQL URL is given).
    #[arg(long, env = "QUARTET_DATA_DIR", default_value = "quartet-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (postgres://user@host:port/db); several replicas can share it.
    /// Migrations run at start.
    #[arg(
        long,
        env = "QUARTET_DATABASE_URL",
        conflicts_with = "database_url_file"
    )]
    pub database_url: Option<String>,

    /// A file holding the PostgreSQL URL, read once at start (surrounding whitespace
    /// trimmed): a mounted Secret keeps the password out of the environment, where
    /// `/proc/PID/environ`, crash reports and `kubectl describe` would show it.
    #[arg(long, env = "QUARTET_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Changes kept for watches from a past revision; older ones are trimmed.
    #[arg(long, env = "QUARTET_CHANGE_RETENTION", default_value_t = 100_000)]
    pub change_retention: u64,
}

impl StoreOptions {
    /// Opens the store these options describe.
    pub async fn open(&self) -> Result<PeopleStore, DatabaseError> {
        let backend: Arc<dyn StoreBackend> = match self.postgres_url()? {
            Some(url) => Arc::new(
                store::postgres::PostgresBackend::connect(&url, self.change_retention).await?,
            ),
            None => Arc::new(store::redb::RedbBackend::open(
                &self.data_dir,
                self.change_retention,
            )?),
        };
        PeopleStore::new(backend).await
    }

    /// The PostgreSQL URL, given directly or read from `database_url_file`; `None`
    /// means the embedded store.
    pub fn postgres_url(&self) -> Result<Option<String>, DatabaseError> {
        let Some(path) = &self.database_url_file else {
            return Ok(self.database_url.clone());
        };
        // A blocking read of a small file, once, before anything serves.
        let contents = std::fs::read_to_string(path).map_err(|error| {
            DatabaseError::Misconfigured(format!(
                "cannot read the database URL file {}: {error}",
                path.display()
            ))
        })?;
        let url = contents.trim();
        if url.is_empty() {
            return Err(DatabaseError::Misconfigured(format!(
                "the database URL file {} is empty",
                path.display()
            )));
        }
        Ok(Some(url.to_owned()))
    }
}

/// The handler `options` describe: opens the store (and runs PostgreSQL's
/// migrations) first.
pub async fn handler(options: &StoreOptions) -> Result<PeopleHandler, DatabaseError> {
    Ok(PeopleHandler::new(options.open().await?))
}

/// A server hosting `handler`, with the shared runtime around it: the
/// server's drain ends the watches, and the store's metrics are registered.
pub fn server(options: ServerOptions, shutdown: Shutdown, handler: PeopleHandler) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    let store = handler.store().clone();
    let handler = handler.hosted(shutdown.drain_signal());
    GrpcServer::new("database", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(PeopleServiceServer::new(handler).limited_to(limit))
        .register_metrics(move |metrics| store.register_metrics(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options as the binaries parse them.
    fn parse(args: &[&str]) -> Result<StoreOptions, clap::Error> {
        quartet_runtime::config::parse_options(args.iter().copied())
    }

    fn with_url_file(contents: &str) -> (tempfile::TempDir, StoreOptions) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, contents).unwrap();
        let options = parse(&["--database-url-file", path.to_str().unwrap()]).unwrap();
        (dir, options)
    }

    #[test]
    fn url_file_is_read_with_surrounding_whitespace_trimmed() {
        let (_dir, options) = with_url_file("  postgres://quartet:s3cret@db:5432/quartet\n\n");
        assert_eq!(
            options.postgres_url().unwrap().as_deref(),
            Some("postgres://quartet:s3cret@db:5432/quartet")
        );
    }

    #[test]
    fn empty_url_file_is_a_start_up_error() {
        let (_dir, options) = with_url_file(" \n\t\n");
        let error = options.postgres_url().unwrap_err();
        assert!(matches!(error, DatabaseError::Misconfigured(_)), "{error}");
        assert!(error.to_string().contains("is empty"), "{error}");
    }

    #[test]
    fn missing_url_file_is_a_start_up_error_naming_the_file() {
        let options = parse(&["--database-url-file", "/nonexistent/quartet/url"]).unwrap();
        let error = options.postgres_url().unwrap_err();
        assert!(matches!(error, DatabaseError::Misconfigured(_)), "{error}");
        assert!(
            error.to_string().contains("/nonexistent/quartet/url"),
            "{error}"
        );
    }

    #[test]
    fn url_and_url_file_together_are_a_usage_error() {
        let error = parse(&[
            "--database-url",
            "postgres://db/quartet",
            "--database-url-file",
            "/run/secrets/url",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn no_url_means_the_embedded_store() {
        let options = parse(&["--data-dir", "people"]).unwrap();
        assert_eq!(options.postgres_url().unwrap(), None);
        let options = parse(&["--database-url", "postgres://db/quartet"]).unwrap();
        assert_eq!(
            options.postgres_url().unwrap().as_deref(),
            Some("postgres://db/quartet")
        );
    }
}

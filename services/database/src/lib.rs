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
//!   [`StoreBackend`]: [`store::redb`] (embedded, default) or [`store::postgres`].
//! - [`error`]: [`DatabaseError`] and its one mapping to a gRPC status.
//! - [`grpc`]: the thin adapter from the generated service to the store.
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
use quartet_proto::database::v1::people_service_server::PeopleServiceServer;
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
    /// Directory of the embedded store (used unless --database-url is given).
    #[arg(long, env = "QUARTET_DATA_DIR", default_value = "quartet-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (postgres://user@host:port/db); several replicas can share it.
    /// Migrations run at start.
    #[arg(long, env = "QUARTET_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Changes kept for watches from a past revision; older ones are trimmed.
    #[arg(long, env = "QUARTET_CHANGE_RETENTION", default_value_t = 100_000)]
    pub change_retention: u64,
}

impl StoreOptions {
    /// Opens the store these options describe.
    pub async fn open(&self) -> Result<PeopleStore, DatabaseError> {
        let backend: Arc<dyn StoreBackend> = match &self.database_url {
            Some(url) => Arc::new(
                store::postgres::PostgresBackend::connect(url, self.change_retention).await?,
            ),
            None => Arc::new(store::redb::RedbBackend::open(
                &self.data_dir,
                self.change_retention,
            )?),
        };
        PeopleStore::new(backend).await
    }
}

/// A server hosting the people service over `store`.
pub fn server(options: ServerOptions, shutdown: Shutdown, store: PeopleStore) -> GrpcServer {
    let limit = options.limits.max_message_bytes;
    store.register_metrics(&options.metrics);
    let handler = PeopleHandler::new(store, shutdown.drain_signal());
    GrpcServer::new("database", options, shutdown)
        .descriptors(quartet_proto::FILE_DESCRIPTOR_SET)
        .add_service(
            PeopleServiceServer::new(handler)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
}

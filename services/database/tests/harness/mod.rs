//! Starting a people server on either backend for a test, and cleaning up after.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use quartet_database::StoreOptions;
use quartet_proto::database::v1::{
    GetPersonRequest, Person, UpdatePersonRequest, people_service_client::PeopleServiceClient,
};
use quartet_runtime::{RunningServer, ServerOptions, Shutdown};
use tonic::Code;
use tonic::transport::Channel;

/// Every test finishes well within this.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Where a test's people live.
pub(crate) enum Backend {
    /// A fresh embedded store in a temporary directory.
    Redb(tempfile::TempDir),
    /// A fresh schema in the test PostgreSQL.
    Postgres {
        url: String,
        admin_url: String,
        schema: String,
    },
}

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

impl Backend {
    pub(crate) fn redb() -> Self {
        Self::Redb(tempfile::tempdir().unwrap())
    }

    /// A fresh schema, or `None` (with a visible skip line) without PostgreSQL.
    pub(crate) async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("QUARTET_TEST_POSTGRES_URL") else {
            println!("SKIPPED: QUARTET_TEST_POSTGRES_URL is not set; PostgreSQL tests do not run");
            return None;
        };
        let schema = format!(
            "quartet_test_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
        Some(Self::Postgres {
            url,
            admin_url,
            schema,
        })
    }

    pub(crate) fn options(&self, retention: u64) -> StoreOptions {
        match self {
            Self::Redb(dir) => StoreOptions {
                data_dir: dir.path().to_owned(),
                database_url: None,
                database_url_file: None,
                change_retention: retention,
            },
            Self::Postgres { url, .. } => StoreOptions {
                data_dir: "unused".into(),
                database_url: Some(url.clone()),
                database_url_file: None,
                change_retention: retention,
            },
        }
    }

    /// Drops what the test created.
    pub(crate) async fn clean_up(self) {
        if let Self::Postgres {
            admin_url, schema, ..
        } = self
        {
            let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
}

/// A running server and a client of it.
pub(crate) struct Fixture {
    pub(crate) server: RunningServer,
    pub(crate) client: PeopleServiceClient<Channel>,
}

pub(crate) async fn start(backend: &Backend) -> Fixture {
    start_with(backend, 100_000).await
}

pub(crate) async fn start_with(backend: &Backend, retention: u64) -> Fixture {
    let store = backend.options(retention).open().await.unwrap();
    let server = quartet_database::server(ServerOptions::default(), Shutdown::new(), store)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let client = PeopleServiceClient::connect(server.url()).await.unwrap();
    Fixture { server, client }
}

pub(crate) fn person(id: &str, name: &str) -> Person {
    Person {
        id: id.into(),
        name: name.into(),
        ..Person::default()
    }
}

/// Increments the counter kept in `id`'s name ("n=<count>") `times` times, each
/// a read-modify-write conditional on the version read, retried on conflict.
/// Returns how many conflicts it met.
pub(crate) async fn increment(
    mut client: PeopleServiceClient<Channel>,
    id: &str,
    times: usize,
) -> usize {
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            let current = client
                .get_person(GetPersonRequest { id: id.into() })
                .await
                .unwrap()
                .into_inner();
            let count: usize = current.name.trim_start_matches("n=").parse().unwrap();
            let request = UpdatePersonRequest {
                person: Some(person(id, &format!("n={}", count + 1))),
                update_mask: None,
                expected_version: Some(current.version),
            };
            match client.update_person(request).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::FailedPrecondition => conflicts += 1,
                Err(status) => panic!("unexpected {status:?}"),
            }
        }
    }
    conflicts
}

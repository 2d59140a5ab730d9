//! External services a test needs (PostgreSQL, NATS, grpcio), found through
//! environment variables, programs it drives (chromedriver), and fresh PostgreSQL schemas for tests to own.
//!
//! A test without its service prints a `SKIPPED` line on stderr (which the
//! test harness shows, unlike the stdout of a passing test) and returns;
//! under `CI=true` a missing service fails the test instead, so CI can never
//! pass by skipping.

use std::{
    io::Write as _,
    sync::atomic::{AtomicU32, Ordering},
};

/// The variable naming the test PostgreSQL (`postgres://...`).
pub const POSTGRES_URL: &str = "QUARTET_TEST_POSTGRES_URL";
/// The variable naming the test NATS (`nats://...`).
pub const NATS_URL: &str = "QUARTET_TEST_NATS_URL";

/// The value of `variable`, or `None` after a visible skip line naming `test`.
///
/// # Panics
/// When the variable is missing and `CI=true`: CI must run every test.
pub fn required(variable: &str, test: &str) -> Option<String> {
    if let Ok(value) = std::env::var(variable) {
        return Some(value);
    }
    skip(test, &format!("{variable} is not set"));
    None
}

/// Says on stderr that `test` is skipped because `missing`, for the test to
/// return after.
///
/// # Panics
/// Under `CI=true`: CI must run every test.
pub fn skip(test: &str, missing: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must run {test}, but {missing}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {missing}");
}

/// The path of the program `name` on `PATH`, or `None` after a visible skip
/// line naming `test` (the browser test needs `chromedriver`).
///
/// # Panics
/// When the program is missing and `CI=true`: CI installs it.
pub fn program(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_some() {
        return found;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} must be installed in CI ({test})"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {name} is not on PATH");
    None
}

static SCHEMAS: AtomicU32 = AtomicU32::new(0);

/// A schema of its own in the test PostgreSQL, dropped by
/// [`TestSchema::drop_schema`], or when it goes out of scope (a test that
/// panicked leaves nothing behind either).
#[derive(Debug)]
pub struct TestSchema {
    admin_url: String,
    name: String,
    /// A URL whose connections use only this schema.
    pub url: String,
    dropped: bool,
}

impl TestSchema {
    /// Creates a fresh schema, or returns `None` after a visible skip line
    /// (see [`required`]).
    ///
    /// # Panics
    /// When PostgreSQL is configured but cannot create the schema.
    #[allow(clippy::expect_used)] // A test fixture: the panic is the report.
    pub async fn create(test: &str) -> Option<Self> {
        let admin_url = required(POSTGRES_URL, test)?;
        let name = format!(
            "quartet_test_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |now| now.as_micros()),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
        admin(&admin_url, &format!("CREATE SCHEMA {name}"))
            .await
            .expect("cannot create a test schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Some(Self {
            admin_url,
            name,
            url,
            dropped: false,
        })
    }

    /// Drops the schema and everything in it. A server that has just stopped
    /// may still have a query in flight on a connection it is closing; when
    /// PostgreSQL picks the drop as that deadlock's victim, it is tried again.
    pub async fn drop_schema(mut self) -> Result<(), tokio_postgres::Error> {
        const ATTEMPTS: usize = 5;
        self.dropped = true;
        let statement = format!("DROP SCHEMA {} CASCADE", self.name);
        let mut attempt = 1;
        loop {
            match admin(&self.admin_url, &statement).await {
                Err(error)
                    if attempt < ATTEMPTS
                        && error.code()
                            == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
                {
                    attempt += 1;
                }
                done => return done,
            }
        }
    }
}

impl Drop for TestSchema {
    /// Drops the schema of a test that did not (it panicked, say), on a
    /// thread of its own: a destructor cannot wait on the test's runtime.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (url, statement) = (
            self.admin_url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(admin(&url, &statement));
            }
        });
        let _ = cleanup.join();
    }
}

async fn admin(url: &str, statement: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    client.batch_execute(statement).await?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

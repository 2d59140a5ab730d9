//! The writers' gate: an advisory lock every write transaction holds shared,
//! and a reader holds exclusively for the moment it needs an exact "now".
//!
//! Revisions are transaction ids, and transactions commit out of id order, so
//! the changes one snapshot sees are not always the ones below some revision:
//! a later id may have committed while an earlier one still runs. Watching
//! from such a snapshot would repeat a change the reader already saw, or skip
//! one. Holding the gate exclusively waits for every write in flight and
//! keeps new ones out, so a snapshot taken then sees exactly the changes below
//! its next transaction id. Writes share the gate with each other, so they
//! still commit side by side; only a list or a watch from now pauses them,
//! for a statement or two.

use deadpool_postgres::{Object, Transaction};

/// Longest a reader waits for the writes in flight to finish.
pub(super) const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The gate's SQL for one schema (each schema is a database of its own).
#[derive(Debug, Clone)]
pub(super) struct WritersGate {
    /// Begins a write transaction holding the gate shared.
    begin_write: String,
    /// Holds the gate exclusively until the transaction ends.
    close: String,
}

impl WritersGate {
    /// The gate of the schema whose advisory lock key is `key`.
    pub(super) fn new(key: i64) -> Self {
        Self {
            begin_write: format!("BEGIN; SELECT pg_advisory_xact_lock_shared({key})"),
            close: format!(
                "SET LOCAL lock_timeout = '{}s'; SELECT pg_advisory_xact_lock({key})",
                CLOSE_TIMEOUT.as_secs()
            ),
        }
    }

    /// `BEGIN`, then the gate held shared: one simple query, so it rides in
    /// the first round trip of a write.
    pub(super) fn begin_write(&self) -> &str {
        &self.begin_write
    }

    /// A read-only transaction on `client` that has waited for every write
    /// in flight and holds new ones back until it ends: what its statements
    /// read is exactly what was committed below its next transaction id.
    /// Gives up after [`CLOSE_TIMEOUT`] (`LOCK_NOT_AVAILABLE`), so that a
    /// stuck write transaction cannot stall every other writer behind a
    /// waiting reader for longer.
    pub(super) async fn closed<'a>(
        &self,
        client: &'a mut Object,
    ) -> Result<Transaction<'a>, tokio_postgres::Error> {
        let txn = client.build_transaction().read_only(true).start().await?;
        txn.batch_execute(&self.close).await?;
        Ok(txn)
    }
}

/// SQL for the key of the gate of the connection's schema. A macro, to be
/// `concat!`ed into the query that reads the schema's name too.
macro_rules! gate_key {
    () => {
        "hashtext(current_schema() || '.quartet_people_writers')::int8"
    };
}
pub(super) use gate_key;

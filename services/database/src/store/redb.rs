//! The embedded store: one redb file under `--data-dir`.
//!
//! redb gives one writer at a time and snapshot (MVCC) readers that never wait
//! for it; each batch is one write transaction committed with
//! `Durability::Immediate` (fsync before the writes in it are answered). redb
//! is synchronous, so every call runs on tokio's blocking pool.
//!
//! [`RedbBackend::with_storage`] puts another disk under redb than a file: the
//! power-loss tests (`tests/power_loss/`) give it one that forgets what was not
//! synced.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use ::redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    Table, TableDefinition,
};
use async_trait::async_trait;

use super::{
    StoreBackend, WriteResult,
    encoding::{decode_change, decode_person, encode_change, encode_person},
};
use crate::{
    change::{Change, PendingChange},
    error::DatabaseError,
    listing::{ListQuery, Page},
    person::{Person, Timestamp, prefix_upper_bound},
    write::{WriteOp, decide, decide_upsert},
};

/// People by id.
const PEOPLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("people");
/// The change log, by revision.
const CHANGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("changes");
/// Counters; only [`REVISION`] so far.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The key of the latest committed revision in [`META`].
const REVISION: &str = "revision";
/// File name inside the data directory.
const FILE_NAME: &str = "people.redb";
/// Page cache: the working set of a people database fits comfortably.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The log is trimmed once it holds this many more changes than it must keep,
/// so trimming happens in bulk rather than on every commit.
const TRIM_SLACK: u64 = 1024;

/// The settings of every store, whatever its disk.
fn builder() -> ::redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// Makes a new store file whole under a temporary name, then renames it into
/// place and syncs the directory. Power lost while the file is being made
/// leaves a temporary file (made anew at the next start), never a half-made
/// `people.redb` that redb would refuse to open; and once the store has
/// answered, its file's name survives power loss too (fsync(2): syncing a
/// file does not sync the directory entry that names it).
fn create_whole(dir: &Path, path: &Path) -> Result<(), DatabaseError> {
    let fresh = dir.join(format!("{FILE_NAME}.new"));
    let failed = |what: &str, error: std::io::Error| {
        DatabaseError::Unavailable(format!("cannot {what} {}: {error}", fresh.display()))
    };
    match std::fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed("remove the unfinished", error)),
    }
    let db = builder().create(&fresh).map_err(storage)?;
    create_tables(&db)?;
    drop(db);
    std::fs::rename(&fresh, path).map_err(|error| failed("rename", error))?;
    sync_dir(dir).map_err(|error| failed("sync the directory of", error))
}

/// Makes the entries of `dir` (names of files created or renamed in it)
/// durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates the tables, so readers never find them missing.
fn create_tables(db: &Database) -> Result<(), DatabaseError> {
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(PEOPLE).map_err(storage)?;
    txn.open_table(CHANGES).map_err(storage)?;
    txn.open_table(META).map_err(storage)?;
    txn.commit().map_err(storage)
}

fn storage(error: impl Into<::redb::Error>) -> DatabaseError {
    let error: ::redb::Error = error.into();
    DatabaseError::Internal(format!("embedded store: {error}"))
}

/// The embedded backend.
#[derive(Debug, Clone)]
pub struct RedbBackend {
    db: Arc<Database>,
    /// The database file, for its size; `None` on a disk given to
    /// [`Self::with_storage`].
    path: Option<PathBuf>,
    /// Changes kept in the log for watches from the past.
    retention: u64,
}

impl RedbBackend {
    /// Opens (or creates) the store in `dir`, keeping the last `retention`
    /// changes for watches.
    pub fn open(dir: &Path, retention: u64) -> Result<Self, DatabaseError> {
        let unavailable = |what: &str, error: std::io::Error| {
            DatabaseError::Unavailable(format!("cannot {what} {}: {error}", dir.display()))
        };
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|error| unavailable("create data dir", error))?;
            // The new directory's name is an entry in its parent: synced too.
            if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|error| unavailable("sync the parent of", error))?;
            }
        }
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            create_whole(dir, &path)?;
        }
        let db = builder().create(&path).map_err(|error| match error {
            ::redb::DatabaseError::DatabaseAlreadyOpen => DatabaseError::Unavailable(format!(
                "{} is in use by another process",
                path.display()
            )),
            other => storage(other),
        })?;
        Self::with_database(db, Some(path), retention)
    }

    /// Opens (or creates) the store on `disk` instead of a file, with the same
    /// settings as [`Self::open`]. For tests that put a simulated disk under
    /// redb to cut its power (`tests/power_loss/`); servers use [`Self::open`].
    /// Such a store has no file, so it reports no size.
    pub fn with_storage(
        disk: impl ::redb::StorageBackend,
        retention: u64,
    ) -> Result<Self, DatabaseError> {
        let db = builder().create_with_backend(disk).map_err(storage)?;
        Self::with_database(db, None, retention)
    }

    /// Creates the tables (so readers never find them missing) and wraps `db`.
    fn with_database(
        db: Database,
        path: Option<PathBuf>,
        retention: u64,
    ) -> Result<Self, DatabaseError> {
        create_tables(&db)?;
        Ok(Self {
            db: Arc::new(db),
            path,
            retention: retention.max(1),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, DatabaseError> + Send + 'static,
    ) -> Result<T, DatabaseError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|error| DatabaseError::Internal(format!("store task failed: {error}")))?
    }

    fn apply_batch(
        db: &Database,
        ops: &[WriteOp],
        retention: u64,
    ) -> Result<Vec<WriteResult>, DatabaseError> {
        let mut txn = db.begin_write().map_err(storage)?;
        // The promise behind every answer. It is redb's default too, but stated:
        // tests/power_loss/ fails when it is weakened to `Durability::None`.
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let results = {
            let mut people = txn.open_table(PEOPLE).map_err(storage)?;
            let mut changes = txn.open_table(CHANGES).map_err(storage)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            let mut revision = meta
                .get(REVISION)
                .map_err(storage)?
                .map_or(0, |value| value.value());
            let mut log = ChangeLog {
                people: &mut people,
                changes: &mut changes,
                revision: &mut revision,
                now: Timestamp::now(),
            };
            let results: Vec<WriteResult> = ops
                .iter()
                .map(|op| log.apply(op))
                .collect::<Result<_, _>>()?;
            meta.insert(REVISION, revision).map_err(storage)?;
            if changes.len().map_err(storage)? > retention + TRIM_SLACK {
                let keep_from = revision.saturating_sub(retention) + 1;
                changes
                    .retain_in(..keep_from, |_, _| false)
                    .map_err(storage)?;
            }
            results
        };
        txn.commit().map_err(storage)?;
        Ok(results)
    }
}

/// The tables of one write transaction, and the revision counter.
struct ChangeLog<'t, 'a> {
    people: &'a mut Table<'t, &'static str, &'static [u8]>,
    changes: &'a mut Table<'t, u64, &'static [u8]>,
    revision: &'a mut u64,
    now: Timestamp,
}

impl ChangeLog<'_, '_> {
    /// Applies one write. The outer error is a storage failure (the batch
    /// aborts); the inner one rejects this write alone, which changed nothing.
    fn apply(&mut self, op: &WriteOp) -> Result<WriteResult, DatabaseError> {
        if let WriteOp::Import(people) = op {
            let mut committed = Vec::with_capacity(people.len());
            for person in people {
                let current = self.load(&person.id)?;
                let pending = decide_upsert(person, current.as_ref(), self.now);
                committed.push(self.record(pending)?);
            }
            return Ok(Ok(committed));
        }
        let id = op
            .ids()
            .first()
            .map(|id| (*id).to_owned())
            .unwrap_or_default();
        let current = self.load(&id)?;
        match decide(op, current.as_ref(), self.now) {
            Ok(pending) => Ok(Ok(vec![self.record(pending)?])),
            Err(rejected) => Ok(Err(rejected)),
        }
    }

    fn load(&self, id: &str) -> Result<Option<Person>, DatabaseError> {
        match self.people.get(id).map_err(storage)? {
            Some(bytes) => decode_person(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Stores the change's record and appends it to the log.
    fn record(&mut self, pending: PendingChange) -> Result<Change, DatabaseError> {
        *self.revision += 1;
        let change = pending.commit(*self.revision, self.now);
        if change.kind == crate::change::ChangeKind::Deleted {
            self.people
                .remove(change.person.id.as_str())
                .map_err(storage)?;
        } else {
            self.people
                .insert(
                    change.person.id.as_str(),
                    encode_person(&change.person).as_slice(),
                )
                .map_err(storage)?;
        }
        self.changes
            .insert(change.revision, encode_change(&change).as_slice())
            .map_err(storage)?;
        Ok(change)
    }
}

#[async_trait]
impl StoreBackend for RedbBackend {
    async fn apply(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, DatabaseError> {
        let retention = self.retention;
        self.blocking(move |db| Self::apply_batch(db, &ops, retention))
            .await
    }

    /// Runs inline, not on the blocking pool: a point read is one B-tree descent
    /// of a few pages, nearly always in redb's cache, cheaper than the hand-off
    /// to another thread (measured: 15-40% more gets per second inline). Scans
    /// and commits, whose cost grows with their size, stay on the blocking pool.
    async fn get(&self, id: &str) -> Result<Person, DatabaseError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let people = txn.open_table(PEOPLE).map_err(storage)?;
        match people.get(id).map_err(storage)? {
            Some(bytes) => decode_person(bytes.value()),
            None => Err(DatabaseError::NotFound(id.to_owned())),
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, DatabaseError> {
        let query = query.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let people = txn.open_table(PEOPLE).map_err(storage)?;
            let meta = txn.open_table(META).map_err(storage)?;
            let revision = meta
                .get(REVISION)
                .map_err(storage)?
                .map_or(0, |value| value.value());
            let upper = prefix_upper_bound(&query.prefix);
            let start = query.prefix.as_str();
            let range = match &upper {
                Some(upper) => people.range::<&str>(start..upper.as_str()),
                None => people.range::<&str>(start..),
            }
            .map_err(storage)?;
            let mut found = Vec::with_capacity(query.limit.min(64));
            let mut more = false;
            for entry in range {
                let (id, bytes) = entry.map_err(storage)?;
                if query
                    .after
                    .as_deref()
                    .is_some_and(|after| id.value() <= after)
                {
                    continue;
                }
                if found.len() == query.limit {
                    more = true;
                    break;
                }
                found.push(decode_person(bytes.value())?);
            }
            Ok(Page {
                people: found,
                more,
                revision,
            })
        })
        .await
    }

    async fn changes_after(
        &self,
        revision: u64,
        limit: usize,
    ) -> Result<Vec<Change>, DatabaseError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let changes = txn.open_table(CHANGES).map_err(storage)?;
            let mut found = Vec::new();
            for entry in changes.range(revision + 1..).map_err(storage)? {
                let (key, bytes) = entry.map_err(storage)?;
                let key = key.value();
                if found.is_empty() && key != revision + 1 {
                    return Err(DatabaseError::RevisionCompacted {
                        requested: revision,
                        oldest: key,
                    });
                }
                found.push(decode_change(key, bytes.value())?);
                if found.len() == limit {
                    break;
                }
            }
            Ok(found)
        })
        .await
    }

    async fn size_bytes(&self) -> Result<u64, DatabaseError> {
        let Some(path) = &self.path else {
            return Err(DatabaseError::Unavailable(
                "the store is not a file; its size is not measured".into(),
            ));
        };
        std::fs::metadata(path)
            .map(|metadata| metadata.len())
            .map_err(|error| DatabaseError::Unavailable(format!("{}: {error}", path.display())))
    }

    async fn revision(&self) -> Result<u64, DatabaseError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(storage)?;
            let meta = txn.open_table(META).map_err(storage)?;
            Ok(meta
                .get(REVISION)
                .map_err(storage)?
                .map_or(0, |value| value.value()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::{FILE_NAME, RedbBackend};

    #[test]
    fn a_new_store_is_made_under_a_temporary_name_and_an_unfinished_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("fresh");
        // What power lost mid-creation would leave: a half-made temporary file.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join(format!("{FILE_NAME}.new")), b"half a header").unwrap();

        let store = RedbBackend::open(&data, 10).unwrap();
        drop(store);
        assert!(data.join(FILE_NAME).exists());
        assert!(!data.join(format!("{FILE_NAME}.new")).exists());
        // And the finished file opens again, as it is.
        RedbBackend::open(&data, 10).unwrap();
    }
}

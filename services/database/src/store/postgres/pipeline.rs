//! Connections shared by point reads: tokio-postgres pipelines the queries of
//! concurrent callers on one connection (each is sent without waiting for the
//! answers before it), so a few connections carry many reads in flight.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use deadpool_postgres::{Object, Pool};

use super::unavailable;
use crate::error::DatabaseError;

/// A few connections, each shared by every read that lands on it.
pub(super) struct SharedConnections {
    pool: Pool,
    /// The connections, taken from `pool` on first use and again after one
    /// is lost.
    slots: Vec<Mutex<Option<Arc<Object>>>>,
    /// Round-robin position.
    next: AtomicUsize,
}

impl SharedConnections {
    /// `count` shared connections taken from `pool` as needed.
    pub(super) fn new(pool: Pool, count: usize) -> Self {
        Self {
            pool,
            slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection in turn, connecting it if it is new or was lost.
    pub(super) async fn get(&self) -> Result<Arc<Object>, DatabaseError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        if let Some(client) = lock(slot).as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        let fresh = Arc::new(self.pool.get().await.map_err(unavailable)?);
        let mut held = lock(slot);
        // Another caller may have replaced it meanwhile: keep theirs.
        if let Some(client) = held.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        *held = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The slot, even if a panic poisoned it (it holds no invariant to break).
fn lock(slot: &Mutex<Option<Arc<Object>>>) -> std::sync::MutexGuard<'_, Option<Arc<Object>>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

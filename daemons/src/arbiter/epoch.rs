//! Where the epoch counter lives (DESIGN, "Fencing": every part dispatched carries an epoch
//! that only grows, also across arbiter takeovers).
//!
//! The arbiter reads the counter when it takes the lead (start, spare takeover) and raises it
//! to its highest epoch before it sends anything that carries a new one, so an arbiter that
//! takes over later starts above every epoch ever given. Epochs are also `max(last + 1, now in
//! ms)` and follow the highest epoch any daemon reports (see `dispatch`), so even the in-memory
//! store below keeps them growing across takeovers; a store both arbiters see (the retention
//! store) closes the remaining gap (two arbiters whose clocks disagree).
//!
//! [`RetentionEpochStore`] keeps the counter in the retention store both arbiters read from the
//! configuration (MongoDB, or a file beside the file retention); [`MemoryEpochStore`] is the
//! fallback when that store cannot be opened. Calls are made from the arbiter's loop on a
//! blocking thread (`spawn_blocking`), never under the dispatcher's lock, so an implementation
//! may do blocking network I/O.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter that only grows.
pub trait EpochStore: Send + Sync + 'static {
    /// The highest epoch stored.
    fn current(&self) -> Result<u64, String>;
    /// Raises the stored epoch to at least `at_least` (never lowers it); returns the stored
    /// value after the call.
    fn bump(&self, at_least: u64) -> Result<u64, String>;
}

/// The counter in this process only (one arbiter, or arbiters that share nothing).
#[derive(Debug, Default)]
pub struct MemoryEpochStore(AtomicU64);

impl MemoryEpochStore {
    pub fn new(start: u64) -> MemoryEpochStore {
        MemoryEpochStore(AtomicU64::new(start))
    }
}

impl EpochStore for MemoryEpochStore {
    fn current(&self) -> Result<u64, String> {
        Ok(self.0.load(Ordering::SeqCst))
    }

    fn bump(&self, at_least: u64) -> Result<u64, String> {
        Ok(self.0.fetch_max(at_least, Ordering::SeqCst).max(at_least))
    }
}

/// The counter in the retention store (DESIGN, "Fencing": kept where both arbiters see it).
pub struct RetentionEpochStore {
    store: crate::retention::Store,
    /// The runtime the store's futures run on; calls come from blocking threads.
    handle: tokio::runtime::Handle,
}

impl RetentionEpochStore {
    pub fn new(store: crate::retention::Store, handle: tokio::runtime::Handle) -> Self {
        RetentionEpochStore { store, handle }
    }
}

impl EpochStore for RetentionEpochStore {
    fn current(&self) -> Result<u64, String> {
        use crate::retention::RetentionStore;
        self.handle.block_on(self.store.current_epoch()).map_err(|e| e.to_string())
    }

    fn bump(&self, at_least: u64) -> Result<u64, String> {
        use crate::retention::RetentionStore;
        self.handle.block_on(self.store.bump_epoch(at_least)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_only_grows() {
        let s = MemoryEpochStore::new(5);
        assert_eq!(s.current().unwrap(), 5);
        assert_eq!(s.bump(3).unwrap(), 5);
        assert_eq!(s.bump(9).unwrap(), 9);
        assert_eq!(s.current().unwrap(), 9);
    }
}

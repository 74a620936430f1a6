//! Turns by key, within one process: callers that would only queue inside PostgreSQL for
//! the same row lock (appends to one conversation) wait here instead, so the database
//! runs one of them per key at a time.
//!
//! Why: a row lock with many waiters is dear in PostgreSQL. Waiters queue on heavyweight
//! tuple locks in the shared lock table and each commit wakes them to contend again;
//! measured with 32 appends in flight over 16 conversations on 30 connections, the
//! database's cores went to that (`LWLock:LockManager`, spin delays) and appends ran at
//! 580 to 890 a second; taking turns here first, 1,880 to 2,310 (docs/performance.md).
//! Waiting on a tokio mutex costs the database nothing.
//! Other processes still take their own turns: the row lock keeps the order correct; turns
//! only keep the queue out of the database.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

/// Keys not used for this long lose their place; a new caller starts a fresh queue.
const IDLE: Duration = Duration::from_secs(60);

/// One queue per key; cheap to clone.
#[derive(Clone)]
pub struct Turns {
    queues: moka::sync::Cache<Uuid, Arc<Mutex<()>>>,
}

impl Turns {
    /// Queues for at most `keys` keys at once (the least recently used go first).
    pub fn new(keys: u64) -> Self {
        Self {
            queues: moka::sync::Cache::builder()
                .max_capacity(keys)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// Waits for `key`'s turn; the turn passes on when the guard is dropped.
    pub async fn take(&self, key: Uuid) -> OwnedMutexGuard<()> {
        let queue = self.queues.get_with(key, || Arc::new(Mutex::new(())));
        queue.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_keys_apart() {
        let turns = Turns::new(100);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let held = turns.take(a).await;
        // Another key is free.
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take(b)).await;
        assert!(other.is_ok(), "another key waits for nobody");
        // The same key waits until the holder lets go.
        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(a).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second caller waits its turn");
        drop(held);
        let next = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(next.is_ok(), "the turn passed on");
    }
}

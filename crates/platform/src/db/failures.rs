//! Failed connection attempts, each failing one waiting checkout.
//!
//! bb8 does not wake its waiters when a connect fails; they would sit out the checkout
//! timeout against a database that refuses them. Each failure is recorded here and wakes
//! the waiters; one of them claims it and fails with `UNAVAILABLE`, the others start a
//! connection attempt of their own, which succeeds if the database is back. So a down
//! database fails every waiter fast, and one refused connect fails only one caller.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct ConnectFailures {
    notify: Notify,
    /// Failures no waiter has taken yet: never more than there are waiters (a failed
    /// background reconnect with nobody waiting fails nobody), and reset by a successful
    /// connect, so old failures cannot fail callers that arrive later.
    unclaimed: AtomicUsize,
    waiters: AtomicUsize,
}

/// A caller waiting for a connection, counted while it lives.
pub(crate) struct Waiting<'a>(&'a ConnectFailures);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConnectFailures {
    pub(crate) fn failed(&self) {
        let waiters = self.waiters.load(Ordering::SeqCst);
        let _ = self
            .unclaimed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some((n + 1).min(waiters))
            });
        self.notify.notify_waiters();
    }

    /// Callers waiting for a connection now.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }

    pub(crate) fn wait(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }

    pub(crate) fn connected(&self) {
        self.unclaimed.store(0, Ordering::SeqCst);
    }

    /// Takes one unclaimed failure, if there is one.
    pub(crate) fn claim(&self) -> bool {
        self.unclaimed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Resolves at the next failure (register before checking the pool, so none is lost).
    pub(crate) fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

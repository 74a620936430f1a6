//! What the server's layers learn about the request being served, visible to everything
//! the request does without threading a value through every call: its deadline (so the
//! pool caps checkout waits and statement timeouts, and clients pass it on), whether
//! it asked for strong reads (so the cache steps aside), and the WAL position its reads
//! must see (read-your-writes on database replicas: what the caller sent in
//! [`MIN_LSN_HEADER`], raised by the request's own writes and its callees' answers).
//!
//! The layers that set these live in [`crate::server::layers`]; this module only holds
//! the task-locals, so the pool, the cache and the clients need not know the server.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The request metadata that asks for a strong read (`x-read-consistency: strong`).
pub const CONSISTENCY_HEADER: &str = "x-read-consistency";

/// The request and response metadata that carries a WAL position (`X/Y`): a caller
/// sends what its reads must see, a service answers with what its writes need seen.
pub const MIN_LSN_HEADER: &str = "x-min-lsn";

tokio::task_local! {
    static DEADLINE: Instant;
    static STRONG: bool;
    static POSITIONS: Positions;
}

/// The WAL positions of one request, as raw `pg_lsn` values (0 for none).
struct Positions {
    /// What the caller asked its reads to see.
    asked: u64,
    /// The highest position this request's writes (or its callees') reached.
    written: Cell<u64>,
}

/// Time left before the current request's deadline; `None` outside a request.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Runs `fut` with a deadline `timeout` from now.
pub async fn with_deadline<F: Future>(timeout: Duration, fut: F) -> F::Output {
    DEADLINE.scope(Instant::now() + timeout, fut).await
}

/// Polls once inside the deadline scope `deadline` (the deadline layer's future).
pub(crate) fn poll_with_deadline<R>(deadline: Instant, poll: impl FnOnce() -> R) -> R {
    DEADLINE.sync_scope(deadline, poll)
}

/// Whether the current request asked for strong reads.
pub fn is_strong() -> bool {
    STRONG.try_with(|strong| *strong).unwrap_or(false)
}

/// Runs `fut` with strong reads.
pub async fn strong<F: Future>(fut: F) -> F::Output {
    STRONG.scope(true, fut).await
}

/// Runs `fut` as a request whose reads must see WAL position `asked` (0 for none).
pub async fn with_min_lsn<F: Future>(asked: u64, fut: F) -> F::Output {
    let positions = Positions {
        asked,
        written: Cell::new(0),
    };
    POSITIONS.scope(positions, fut).await
}

/// The WAL position the current request's reads must see: what the caller asked, or
/// what the request itself wrote since, whichever is later; 0 outside such a request.
pub fn min_lsn() -> u64 {
    POSITIONS
        .try_with(|p| p.asked.max(p.written.get()))
        .unwrap_or(0)
}

/// Records that the current request's effects are at WAL position `lsn` (a write it
/// made, or one a service it called made); later reads of the request must see it.
pub fn wrote_at(lsn: u64) {
    let _ = POSITIONS.try_with(|p| p.written.set(p.written.get().max(lsn)));
}

/// The WAL position the current request's writes reached, if it wrote; what the answer
/// tells the caller in [`MIN_LSN_HEADER`].
pub fn written_lsn() -> Option<u64> {
    POSITIONS
        .try_with(|p| p.written.get())
        .ok()
        .filter(|lsn| *lsn > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remaining_is_visible_inside_the_scope_only() {
        assert_eq!(remaining(), None);
        let left = with_deadline(Duration::from_secs(10), async { remaining() }).await;
        let left = left.expect("deadline inside scope");
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
    }

    #[tokio::test]
    async fn reads_see_what_was_asked_or_written_whichever_is_later() {
        assert_eq!(min_lsn(), 0);
        let (before, after, written) = with_min_lsn(100, async {
            let before = min_lsn();
            wrote_at(50);
            wrote_at(300);
            wrote_at(200);
            (before, min_lsn(), written_lsn())
        })
        .await;
        assert_eq!((before, after, written), (100, 300, Some(300)));
        assert_eq!(with_min_lsn(7, async { written_lsn() }).await, None);
    }

    #[tokio::test]
    async fn strong_reads_hold_inside_the_scope_only() {
        assert!(!is_strong());
        assert!(strong(async { is_strong() }).await);
    }
}

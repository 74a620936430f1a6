//! What the server's layers learn about the request being served, visible to everything
//! the request does without threading a value through every call: its deadline (so the
//! pool caps checkout waits and statement timeouts, and clients pass it on) and whether
//! it asked for strong reads (so the cache steps aside).
//!
//! The layers that set these live in [`crate::server::layers`]; this module only holds
//! the task-locals, so the pool, the cache and the clients need not know the server.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The request metadata that asks for a strong read (`x-read-consistency: strong`).
pub const CONSISTENCY_HEADER: &str = "x-read-consistency";

tokio::task_local! {
    static DEADLINE: Instant;
    static STRONG: bool;
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
    async fn strong_reads_hold_inside_the_scope_only() {
        assert!(!is_strong());
        assert!(strong(async { is_strong() }).await);
    }
}

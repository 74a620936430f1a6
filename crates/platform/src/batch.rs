//! Batch work: bounded-concurrency execution of many calls. (Bulk inserts chunk their
//! rows with `slice::chunks` and the statement-size limits each store states.)

use std::future::Future;

use futures::StreamExt;

/// Runs `work` on every item with at most `limit` at once; results in input order.
pub async fn bounded<I, T, F, Fut>(items: I, limit: usize, work: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    // The futures are made up front but none runs until `buffered` polls it.
    let calls: Vec<Fut> = items.into_iter().map(work).collect();
    futures::stream::iter(calls)
        .buffered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn bounded_keeps_order_and_its_limit() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let results = bounded(0..20, 3, |i| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(results, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}

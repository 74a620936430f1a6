//! Batch work: bounded-concurrency execution of many calls, and an auto-flushing batch
//! processor that gathers items and hands them on when enough have come or enough time
//! has passed. (Bulk inserts chunk their rows with `slice::chunks` and the statement-size
//! limits each store states.)

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

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

/// Gathers items and passes them to its flush function in batches: when `max_items` have
/// come, when the oldest has waited `max_wait`, and on [`BatchProcessor::close`].
pub struct BatchProcessor<T> {
    items: mpsc::Sender<T>,
    closed: Option<oneshot::Receiver<()>>,
}

impl<T: Send + 'static> BatchProcessor<T> {
    /// Starts the processor on the current runtime.
    pub fn spawn<F, Fut>(max_items: usize, max_wait: Duration, mut flush: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let max_items = max_items.max(1);
        let (items, mut queue) = mpsc::channel::<T>(max_items * 2);
        let (done, closed) = oneshot::channel();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_items);
            let mut deadline = None;
            loop {
                let timer = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    item = queue.recv() => match item {
                        Some(item) => {
                            if batch.is_empty() {
                                deadline = Some(tokio::time::Instant::now() + max_wait);
                            }
                            batch.push(item);
                            if batch.len() >= max_items {
                                flush(std::mem::take(&mut batch)).await;
                                deadline = None;
                            }
                        }
                        None => break,
                    },
                    () = timer => {
                        flush(std::mem::take(&mut batch)).await;
                        deadline = None;
                    }
                }
            }
            if !batch.is_empty() {
                flush(batch).await;
            }
            let _ = done.send(());
        });
        Self {
            items,
            closed: Some(closed),
        }
    }

    /// Adds an item; waits while the processor is a full batch behind.
    pub async fn add(&self, item: T) {
        // Sending fails only once the processor has stopped, which `close` alone does.
        let _ = self.items.send(item).await;
    }

    /// Flushes what is left and waits for it.
    pub async fn close(mut self) {
        let closed = self.closed.take();
        drop(self);
        if let Some(closed) = closed {
            let _ = closed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

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

    #[tokio::test]
    async fn batches_flush_when_full_when_old_enough_and_on_close() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let processor = BatchProcessor::spawn(3, Duration::from_millis(50), move |batch| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push(batch) }
        });
        let started = tokio::time::Instant::now();
        for i in 0..4 {
            processor.add(i).await;
        }
        // Waits (boundedly) for the n-th batch, however loaded the machine is.
        let batch_count = |n: usize| {
            let batches = batches.clone();
            async move {
                for _ in 0..400 {
                    if batches.lock().unwrap().len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        batch_count(1).await;
        assert_eq!(
            batches.lock().unwrap()[0],
            vec![0, 1, 2],
            "a full batch at once"
        );
        batch_count(2).await;
        assert_eq!(
            batches.lock().unwrap()[1],
            vec![3],
            "the straggler after max_wait"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "not before max_wait"
        );
        processor.add(9).await;
        processor.close().await;
        assert_eq!(
            *batches.lock().unwrap(),
            vec![vec![0, 1, 2], vec![3], vec![9]],
            "the rest on close"
        );
    }
}

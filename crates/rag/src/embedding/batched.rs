//! Large inputs to an embedder in batches: at most `batch_size` texts a call and at most
//! `max_concurrency` calls in flight (seed defaults 50 and 3: `EMBEDDING_BATCH_SIZE`,
//! `EMBEDDING_MAX_CONCURRENCY`), results in input order.
//!
//! The bound holds for the whole process, not per `embed` call: every ingestion worker,
//! search and `Embed` request draws from the same permits, so a provider sized for three
//! calls never sees more from one replica.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use agentic_platform::batch;
use agentic_platform::error::Result;

use super::Embedder;

pub struct Batched<E> {
    inner: E,
    batch_size: usize,
    max_concurrency: usize,
    /// One permit per provider call in flight, shared by all callers.
    calls: Arc<Semaphore>,
}

impl<E: Embedder> Batched<E> {
    pub fn new(inner: E, batch_size: usize, max_concurrency: usize) -> Self {
        Self {
            inner,
            batch_size: batch_size.max(1),
            max_concurrency: max_concurrency.max(1),
            calls: Arc::new(Semaphore::new(max_concurrency.max(1))),
        }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Embedder> Embedder for Batched<E> {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    fn dimension_choices(&self) -> Vec<usize> {
        self.inner.dimension_choices()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let batches: Vec<Vec<Vec<f32>>> = batch::bounded(
                texts.chunks(self.batch_size),
                self.max_concurrency,
                |batch| async move {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _call = self.calls.acquire().await.expect("never closed");
                    self.inner.embed(batch).await
                },
            )
            .await
            .into_iter()
            .collect::<Result<_>>()?;
            Ok(batches.into_iter().flatten().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts calls and the most in flight at once; each vector holds its text's length.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        largest_batch: AtomicUsize,
    }

    impl Embedder for Counting {
        fn model(&self) -> &str {
            "counting"
        }
        fn dimensions(&self) -> usize {
            1
        }
        fn count_tokens(&self, text: &str) -> usize {
            text.len()
        }
        fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                self.largest_batch.fetch_max(texts.len(), Ordering::SeqCst);
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
            })
        }
    }

    #[tokio::test]
    async fn batches_of_fifty_with_at_most_three_in_flight_in_order() {
        let batched = Batched::new(Counting::default(), 50, 3);
        let texts: Vec<String> = (0..500).map(|i| "x".repeat(i % 97)).collect();
        let vectors = batched.embed(&texts).await.unwrap();
        let counting = batched.inner();
        assert_eq!(counting.calls.load(Ordering::SeqCst), 10, "⌈500/50⌉ calls");
        assert_eq!(counting.largest_batch.load(Ordering::SeqCst), 50);
        assert_eq!(counting.most_in_flight.load(Ordering::SeqCst), 3);
        let lengths: Vec<f32> = vectors.iter().map(|v| v[0]).collect();
        let expected: Vec<f32> = texts.iter().map(|t| t.len() as f32).collect();
        assert_eq!(lengths, expected, "in input order");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_bound() {
        let batched = Batched::new(Counting::default(), 50, 3);
        let texts: Vec<String> = (0..250).map(|i| i.to_string()).collect();
        // Four workers at once, five calls each: still at most three in flight.
        let results = futures::future::join_all((0..4).map(|_| batched.embed(&texts))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_ok_and(|v| v.len() == 250))
        );
        let counting = batched.inner();
        assert_eq!(counting.calls.load(Ordering::SeqCst), 20);
        assert_eq!(counting.most_in_flight.load(Ordering::SeqCst), 3);
    }
}

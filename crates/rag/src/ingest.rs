//! Ingestion workers: take pending documents from the queue (see `store::queue`), chunk
//! them, embed the chunks through the embedding cache, and write the chunks and the
//! documents' new status in the transaction that holds them.
//!
//! - All of a claim's chunks are embedded together, so the provider sees full batches
//!   whatever the documents' sizes.
//! - Documents this process queued are shared among its idle workers: a call's twenty
//!   documents go to both workers, ten each, so chunks are embedded and written to the
//!   index on two connections at once instead of one after the other (the index's inserts
//!   are most of the work). Documents only another replica queued are found by polling,
//!   a full batch at a time.
//! - A provider error fails the documents it concerns, with the reason and no chunk.
//! - A process that dies mid-claim leaves no trace: its transaction rolls back and its
//!   rows are free again. Every claim counts an attempt on a connection of its own, so
//!   a document that keeps killing its worker fails after `INGEST_MAX_ATTEMPTS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::error::{Error, Result};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::args::IngestArgs;
use crate::chunking;
use crate::embedding::{CachedEmbedder, truncate};
use crate::kinds;
use crate::model::NewChunk;
use crate::store::{self, Claimed};

/// A worker's transaction may run this long per statement (large chunk inserts).
const WORKER_STATEMENT_TIMEOUT: &str = "120s";
/// After a failed round (database down), a worker waits this long before the next.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What the workers share.
pub struct Ingestor {
    pool: Pool,
    cache: Cache,
    /// Cached documents, dropped when their status changes.
    document_kind: CacheKind,
    embeddings: CachedEmbedder,
    /// Woken when this process queues documents.
    queued: Notify,
    /// Woken when a claim finishes, for callers waiting on their documents.
    finished: Notify,
    /// Held while one worker runs its claim query. Two `SKIP LOCKED` scans running at
    /// once interleave and split a batch between them; one at a time, the first worker
    /// takes the whole batch (up to `INGEST_BATCH_DOCUMENTS`) and the next finds the rest.
    claiming: tokio::sync::Mutex<()>,
    /// Documents this process queued that no worker has claimed yet (a hint: other
    /// replicas' workers may take some).
    unclaimed: AtomicUsize,
    /// Workers of this process, and how many of them are working through a claim.
    workers: usize,
    busy: AtomicUsize,
    batch_documents: i64,
    max_attempts: i32,
    poll_interval: Duration,
}

/// One document's chunks, before embedding.
struct Pieces {
    document: Claimed,
    texts: Vec<String>,
    token_counts: Vec<i32>,
}

impl Ingestor {
    pub fn new(
        pool: Pool,
        cache: Cache,
        document_kind: CacheKind,
        embeddings: CachedEmbedder,
        args: &IngestArgs,
    ) -> Self {
        Self {
            pool,
            cache,
            document_kind,
            embeddings,
            queued: Notify::new(),
            finished: Notify::new(),
            claiming: tokio::sync::Mutex::new(()),
            unclaimed: AtomicUsize::new(0),
            workers: args.ingest_workers.max(1),
            busy: AtomicUsize::new(0),
            batch_documents: args.ingest_batch_documents.max(1) as i64,
            max_attempts: args.ingest_max_attempts.max(1) as i32,
            poll_interval: args.ingest_poll_interval,
        }
    }

    /// Tells idle workers of this process that `documents` more are waiting.
    pub fn wake(&self, documents: usize) {
        self.unclaimed.fetch_add(documents, Ordering::Relaxed);
        self.queued.notify_waiters();
    }

    /// How many documents the next claim takes: this process's unclaimed documents shared
    /// evenly among its workers not already busy (the claiming one among them), at most a
    /// batch; a batch when it queued none (another replica's documents, found by polling).
    /// Also returns the unclaimed count it was sized on, for [`Self::claimed`].
    fn claim_size(&self) -> (i64, usize) {
        let unclaimed = self.unclaimed.load(Ordering::Relaxed);
        let free = self
            .workers
            .saturating_sub(self.busy.load(Ordering::Relaxed))
            .max(1);
        (claim_size(unclaimed, free, self.batch_documents), unclaimed)
    }

    /// Counts a claim of `claimed` documents out of `asked` (sized on `seen` unclaimed)
    /// against the unclaimed ones; a claim that found fewer than it asked for saw the
    /// queue empty, so all it had counted on are gone. Documents woken for meanwhile
    /// stay counted: `wake` adds while this subtracts.
    fn claimed(&self, asked: i64, seen: usize, claimed: usize) {
        let gone = if (claimed as i64) < asked {
            seen
        } else {
            claimed
        };
        let _ = self
            .unclaimed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
    }

    /// Resolves when some claim finishes (or `timeout` passes), for pollers.
    pub async fn next_finish(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.finished.notified()).await;
    }

    /// One worker: claims and processes documents until `stop` is cancelled. A claim in
    /// progress is finished first.
    pub async fn run_worker(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let idle = self.queued.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let pause = match self.process_batch().await {
                Ok(0) => self.poll_interval,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "ingestion round failed");
                    ERROR_BACKOFF
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut idle => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims up to a batch of pending documents and settles each one; returns how many.
    pub async fn process_batch(&self) -> Result<usize> {
        let mut pooled = self.pool.get().await?;
        let conn: &mut AsyncPgConnection = &mut pooled;
        let (documents, failed) = conn
            .transaction::<_, Error, _>(async |conn| {
                conn.batch_execute(&format!(
                    "SET LOCAL statement_timeout = '{WORKER_STATEMENT_TIMEOUT}'"
                ))
                .await?;
                let claimed = {
                    let _one_claim_at_a_time = self.claiming.lock().await;
                    let (size, seen) = self.claim_size();
                    let claimed = store::claim(conn, size).await?;
                    self.claimed(size, seen, claimed.len());
                    if !claimed.is_empty() {
                        self.busy.fetch_add(1, Ordering::Relaxed);
                    }
                    claimed
                };
                if claimed.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                let _working = Busy(&self.busy);
                let documents: Vec<(Uuid, Uuid, Uuid)> = claimed
                    .iter()
                    .map(|d| (d.tenant_id, d.collection_id, d.id))
                    .collect();
                let failed = self.settle(conn, claimed).await?;
                Ok((documents, failed))
            })
            .await?;
        let settled = documents.len();
        if settled > 0 {
            // Searches on replicas, in each tenant, must see the new chunks.
            let mut tenants: Vec<Uuid> = documents.iter().map(|(tenant, _, _)| *tenant).collect();
            tenants.sort_unstable();
            tenants.dedup();
            self.pool.announce_write(&tenants, &mut pooled).await;
            metrics::counter!("rag_ingested_documents_total", "status" => "ready")
                .increment((settled - failed) as u64);
            metrics::counter!("rag_ingested_documents_total", "status" => "failed")
                .increment(failed as u64);
            self.finished.notify_waiters();
            let changed: Vec<_> = documents
                .iter()
                .map(|(tenant, _, id)| (&self.document_kind, ScopedKey(*tenant, *id)))
                .collect();
            self.cache.invalidate(&changed).await;
            self.forget_searches(documents.iter().map(|(_, c, _)| *c).collect())
                .await;
        }
        Ok(settled)
    }

    /// Fails the documents out of attempts, and chunks, embeds and stores the rest;
    /// returns how many failed.
    async fn settle(&self, conn: &mut AsyncPgConnection, claimed: Vec<Claimed>) -> Result<usize> {
        let ids: Vec<Uuid> = claimed.iter().map(|d| d.id).collect();
        let attempts = self
            .pool
            .run(async |other| store::count_attempts(other, &ids).await)
            .await?;
        let exhausted: Vec<Uuid> = attempts
            .iter()
            .filter(|(_, n)| *n > self.max_attempts)
            .map(|(id, _)| *id)
            .collect();
        let reason = format!(
            "gave up after {} attempts: its worker stopped or failed each time",
            self.max_attempts
        );
        store::mark_failed(conn, &exhausted, &reason).await?;
        let work: Vec<Claimed> = claimed
            .into_iter()
            .filter(|d| !exhausted.contains(&d.id))
            .collect();
        if work.is_empty() {
            return Ok(exhausted.len());
        }

        let pieces = self.chunk(work).await?;
        let (embedded, failed) = self.embed(pieces).await;
        let failures = exhausted.len() + failed.len();
        for (reason, ids) in group_by_reason(failed) {
            store::mark_failed(conn, &ids, &reason).await?;
        }
        let mut rows = Vec::new();
        let mut counts = Vec::with_capacity(embedded.len());
        for (piece, vectors) in embedded {
            counts.push((piece.document.id, piece.texts.len() as i32));
            rows.extend(new_chunks(piece, vectors));
        }
        store::insert_chunks(conn, &rows).await?;
        store::mark_ready(conn, &counts).await?;
        Ok(failures)
    }

    /// Splits every document by its collection's chunking, off the async threads.
    async fn chunk(&self, documents: Vec<Claimed>) -> Result<Vec<Pieces>> {
        let embedder = self.embeddings.embedder().clone();
        tokio::task::spawn_blocking(move || {
            documents
                .into_iter()
                .map(|document| {
                    let count = |text: &str| embedder.count_tokens(text);
                    let chunks = chunking::chunk(
                        &document.content,
                        document.chunk_size as usize,
                        document.chunk_overlap as usize,
                        &count,
                    );
                    let texts = chunks.iter().map(|c| c.text.to_owned()).collect();
                    let token_counts = chunks.iter().map(|c| c.tokens as i32).collect();
                    Pieces {
                        document,
                        texts,
                        token_counts,
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| Error::internal(format!("chunking failed: {e}")))
    }

    /// Vectors for every document's chunks, all in one call; if that fails, each document
    /// alone, so one document's bad input fails only that document.
    async fn embed(
        &self,
        pieces: Vec<Pieces>,
    ) -> (Vec<(Pieces, Vec<Vec<f32>>)>, Vec<(Uuid, String)>) {
        let all: Vec<String> = pieces
            .iter()
            .flat_map(|p| p.texts.iter().cloned())
            .collect();
        let together = self.embeddings.embed(&all).await;
        let mut embedded = Vec::with_capacity(pieces.len());
        let mut failed = Vec::new();
        match together {
            Ok((mut vectors, _)) => {
                for piece in pieces {
                    let rest = vectors.split_off(piece.texts.len());
                    embedded.push((piece, std::mem::replace(&mut vectors, rest)));
                }
            }
            Err(error) if pieces.len() == 1 => {
                failed.push((pieces[0].document.id, failure_reason(&error)));
            }
            Err(_) => {
                for piece in pieces {
                    match self.embeddings.embed(&piece.texts).await {
                        Ok((vectors, _)) => embedded.push((piece, vectors)),
                        Err(error) => failed.push((piece.document.id, failure_reason(&error))),
                    }
                }
            }
        }
        (embedded, failed)
    }

    /// Drops cached search results of every collection that changed, in O(1) each.
    async fn forget_searches(&self, mut collections: Vec<Uuid>) {
        collections.sort_unstable();
        collections.dedup();
        for collection in collections {
            self.cache
                .invalidate_scope(kinds::SEARCHES, collection)
                .await;
        }
    }
}

/// `unclaimed` documents shared among `free` workers (at least one), at most `batch` each;
/// a whole batch when none are known to wait.
fn claim_size(unclaimed: usize, free: usize, batch: i64) -> i64 {
    if unclaimed == 0 {
        return batch;
    }
    (unclaimed.div_ceil(free.max(1)) as i64).clamp(1, batch)
}

/// A worker working through a claim; no longer when dropped (also when its claim fails).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn failure_reason(error: &Error) -> String {
    format!("embedding failed: {error}")
}

/// Documents failed for the same reason, together (one UPDATE each).
fn group_by_reason(failed: Vec<(Uuid, String)>) -> Vec<(String, Vec<Uuid>)> {
    let mut groups: Vec<(String, Vec<Uuid>)> = Vec::new();
    for (id, reason) in failed {
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((reason, vec![id])),
        }
    }
    groups
}

/// The rows of one document's chunks, with vectors cut to its collection's dimensions.
fn new_chunks(piece: Pieces, vectors: Vec<Vec<f32>>) -> impl Iterator<Item = NewChunk> {
    let Pieces {
        document,
        texts,
        token_counts,
    } = piece;
    let dimensions = document.dimensions;
    texts
        .into_iter()
        .zip(token_counts)
        .zip(vectors)
        .enumerate()
        .map(
            move |(ordinal, ((content, token_count), vector))| NewChunk {
                id: Uuid::now_v7(),
                tenant_id: document.tenant_id,
                collection_id: document.collection_id,
                document_id: document.id,
                ordinal: ordinal as i32,
                content,
                token_count,
                metadata: document.metadata.clone(),
                dimensions,
                embedding: pgvector::Vector::from(truncate(vector, dimensions as usize)),
            },
        )
}

/// How often the queue's depth is reported.
const QUEUE_DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Reports `rag_ingest_queue_depth` (documents waiting for a worker) until `stop`: upkeep
/// of the service's own, not counted as requests' queries.
pub async fn report_queue_depth(pool: Pool, stop: CancellationToken) {
    let gauge = metrics::gauge!("rag_ingest_queue_depth");
    gauge.set(0.0);
    for status in ["ready", "failed"] {
        metrics::counter!("rag_ingested_documents_total", "status" => status).increment(0);
    }
    let mut ticks = tokio::time::interval(QUEUE_DEPTH_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Ok(depth) = pool
            .run_upkeep(async |conn| store::queue_depth(conn).await)
            .await
        {
            gauge.set(depth as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::claim_size;

    #[test]
    fn a_call_s_documents_are_shared_among_free_workers() {
        // Twenty documents, two free workers: ten each (the second then finds ten left
        // and is the only free one).
        assert_eq!(claim_size(20, 2, 32), 10);
        assert_eq!(claim_size(10, 1, 32), 10);
        // An odd count rounds up, so nothing is left for a third claim.
        assert_eq!(claim_size(21, 2, 32), 11);
        // Never more than a batch, never less than one.
        assert_eq!(claim_size(100, 2, 32), 32);
        assert_eq!(claim_size(1, 4, 32), 1);
        // None known: a whole batch (documents another replica queued).
        assert_eq!(claim_size(0, 2, 32), 32);
    }
}

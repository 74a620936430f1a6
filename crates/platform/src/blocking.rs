//! CPU-heavy work (password hashing) on a fixed set of threads, one per core.
//!
//! Without a bound, one batch of a thousand passwords starts a thousand argon2 hashes of
//! 19 MiB each at once. Here a job waits for a free core; if none frees up before the
//! request's deadline, the caller gets `RESOURCE_EXHAUSTED` and may retry later. The
//! threads are fixed (not tokio's blocking pool, which grows to hundreds), so the memory
//! their allocations keep is bounded too.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use crate::error::{Error, Result};
use crate::request;

/// The workers' nice value: below the runtime's threads, so that however busy hashing
/// keeps the cores, health probes and the answers to expiring requests go out first.
const WORKER_NICENESS: i32 = 10;

/// At most this much before the deadline, a job still waiting gives up.
const GIVE_UP_MARGIN: Duration = Duration::from_millis(250);

type Job = Box<dyn FnOnce() + Send>;

/// One thread and one admission permit per core.
struct CpuPool {
    jobs: crossbeam_channel::Sender<Job>,
    permits: Arc<Semaphore>,
}

static POOL: LazyLock<CpuPool> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
    for index in 0..cores {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("agentic-cpu-{index}"))
            .spawn(move || {
                // On Linux the nice value is per thread; failing to lower it is harmless.
                let _ = rustix::process::setpriority_process(None, WORKER_NICENESS);
                for job in queue {
                    // A panicking job fails its caller (its result is never sent), not
                    // the thread.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .expect("spawn a cpu-bound worker thread");
    }
    CpuPool {
        jobs,
        permits: Arc::new(Semaphore::new(cores)),
    }
});

/// Runs `work` on a worker thread once a core is free.
pub async fn cpu_bound<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = &*POOL;
    let acquire = pool.permits.clone().acquire_owned();
    let _permit = match request::remaining() {
        // Give up a little early, so the caller still hears why.
        Some(left) => tokio::time::timeout(left - (left / 10).min(GIVE_UP_MARGIN), acquire)
            .await
            .map_err(|_| busy())?,
        None => acquire.await,
    }
    .map_err(|_| busy())?;
    let (done, result) = oneshot::channel();
    pool.jobs
        .send(Box::new(move || {
            let _ = done.send(work());
        }))
        .map_err(|_| Error::internal("the cpu-bound workers are gone"))?;
    metrics::gauge!("cpu_bound_jobs_running").increment(1.0);
    let outcome = result.await;
    metrics::gauge!("cpu_bound_jobs_running").decrement(1.0);
    outcome.map_err(|_| Error::internal("a cpu-bound job panicked"))
}

fn busy() -> Error {
    metrics::counter!("cpu_bound_rejected_total").increment(1);
    Error::ResourceExhausted("too much CPU-heavy work in flight; retry later")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn no_more_jobs_run_at_once_than_there_are_cores() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..32).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            cpu_bound(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        futures::future::try_join_all(jobs).await.unwrap();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert!(most.load(Ordering::SeqCst) <= cores);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn jobs_run_below_the_runtime_threads_priority() {
        let niceness = || rustix::process::getpriority_process(None).unwrap();
        let runtime = niceness();
        let worker = cpu_bound(niceness).await.unwrap();
        assert_eq!(worker, (runtime + WORKER_NICENESS).min(19));
    }

    #[tokio::test]
    async fn a_job_that_cannot_start_before_the_deadline_is_resource_exhausted() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hogs: Vec<_> = (0..cores)
            .map(|_| tokio::spawn(cpu_bound(|| std::thread::sleep(Duration::from_millis(500)))))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = request::with_deadline(Duration::from_millis(50), cpu_bound(|| ())).await;
        assert!(matches!(late, Err(Error::ResourceExhausted(_))), "{late:?}");
        for hog in hogs {
            hog.await.unwrap().unwrap();
        }
    }
}

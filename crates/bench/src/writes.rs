//! `agentic-write-bench`: what the write paths could do with nothing but the database or
//! the hash, for `make bench` to set the services beside.
//!
//! - `append`: AppendMessages' transaction as a bare tokio-postgres program: lock the
//!   conversation's row, insert the messages with their sequence numbers, update the
//!   conversation's counters, commit (the same durability: the server's
//!   `synchronous_commit`), N in flight over M connections.
//! - `argon2`: the password hash alone (argon2id, the crate's defaults, as the user
//!   service hashes), one thread per core.
//!
//! Each prints one JSON line in `agentic load --rpc`'s shape (rps, p50/p95/p99 ms, errors).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agentic-write-bench",
    about = "Bare write-path baselines for make bench"
)]
struct Cli {
    /// How long to measure (after a warm-up of a tenth of it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// AppendMessages' transaction through tokio-postgres.
    Append {
        /// The conversation service's database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Transactions in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// PostgreSQL connections (the service's pool size, to compare alike).
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Conversations the appends spread over (appends to one take turns).
        #[arg(long, default_value_t = 16)]
        conversations: usize,
        /// Messages per append.
        #[arg(long, default_value_t = 10)]
        messages: usize,
    },
    /// argon2id password hashes, one thread per core.
    Argon2 {
        /// Threads hashing at once (default: the cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (label, measured) = match cli.mode {
        Mode::Append {
            database_url,
            concurrency,
            connections,
            conversations,
            messages,
        } => (
            format!("bare tokio-postgres, AppendMessages' transaction ({messages} messages)"),
            append(
                &database_url,
                concurrency,
                connections,
                conversations,
                messages,
                cli.duration,
            )
            .await?,
        ),
        Mode::Argon2 { threads } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            (
                format!("argon2id hash alone ({threads} threads)"),
                argon2(threads, cli.duration),
            )
        }
    };
    let (histogram, errors, seconds) = measured;
    println!(
        "{}",
        serde_json::json!({
            "label": label,
            "seconds": seconds,
            "requests": histogram.len(),
            "errors": errors,
            "rps": (histogram.len() as f64 / seconds).round(),
            "p50_ms": histogram.value_at_quantile(0.50) as f64 / 1000.0,
            "p95_ms": histogram.value_at_quantile(0.95) as f64 / 1000.0,
            "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
        })
    );
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Latencies, failures and measured seconds.
type Measured = (Histogram<u64>, u64, f64);

const LOCK: &str = "SELECT message_count FROM conversations.conversations \
     WHERE id = $1 AND tenant_id = $2 FOR UPDATE";
const INSERT: &str = "INSERT INTO conversations.messages \
     (conversation_id, sequence, id, tenant_id, role, content, token_count) \
     SELECT $1, $2 + t.n, t.id, $3, t.role, t.content, t.token_count \
       FROM unnest($4::uuid[], $5::text[], $6::text[], $7::int4[]) \
            WITH ORDINALITY AS t(id, role, content, token_count, n)";
const COUNTERS: &str = "UPDATE conversations.conversations \
     SET message_count = $2, last_message_at = now(), updated_at = now() WHERE id = $1";

async fn append(
    url: &str,
    concurrency: usize,
    connections: usize,
    conversations: usize,
    messages: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let tenant = Uuid::now_v7();
    let (setup, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut ids = Vec::with_capacity(conversations);
    for _ in 0..conversations.max(1) {
        let id = Uuid::now_v7();
        setup
            .execute(
                "INSERT INTO conversations.conversations (id, tenant_id, agent_id, user_id, title, status) \
                 VALUES ($1, $2, $3, $4, 'bare', 'active')",
                &[&id, &tenant, &Uuid::now_v7(), &Uuid::now_v7()],
            )
            .await?;
        ids.push(id);
    }
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        clients.push(Arc::new(tokio::sync::Mutex::new(client)));
    }
    let ids = Arc::new(ids);
    let started = Instant::now();
    let measure_from = started + duration / 10;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, ids, stop) = (
            clients[worker % clients.len()].clone(),
            ids.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut errors = 0u64;
            let conversation = ids[worker % ids.len()];
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let mut client = client.lock().await;
                let ok = append_once(&mut client, tenant, conversation, messages)
                    .await
                    .is_ok();
                drop(client);
                if began >= measure_from {
                    if ok {
                        latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latency, errors)
        }));
    }
    tokio::time::sleep_until((measure_from + duration).into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    let mut errors = 0;
    for worker in workers {
        let (worker_latency, worker_errors) = worker.await?;
        latency.add(worker_latency)?;
        errors += worker_errors;
    }
    Ok((latency, errors, duration.as_secs_f64()))
}

/// One append: lock, insert, count, commit.
async fn append_once(
    client: &mut tokio_postgres::Client,
    tenant: Uuid,
    conversation: Uuid,
    messages: usize,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = (0..messages).map(|_| Uuid::now_v7()).collect();
    let roles: Vec<&str> = (0..messages)
        .map(|i| if i % 2 == 0 { "user" } else { "assistant" })
        .collect();
    let contents: Vec<String> = (0..messages)
        .map(|i| format!("Message {i} of a load test, long enough to be typical."))
        .collect();
    let token_counts: Vec<i32> = vec![12; messages];
    let transaction = client.transaction().await?;
    let count: i64 = transaction
        .query_one(LOCK, &[&conversation, &tenant])
        .await?
        .get(0);
    let added = transaction
        .execute(
            INSERT,
            &[
                &conversation,
                &count,
                &tenant,
                &ids,
                &roles,
                &contents,
                &token_counts,
            ],
        )
        .await?;
    transaction
        .execute(COUNTERS, &[&conversation, &(count + added as i64)])
        .await?;
    transaction.commit().await?;
    Ok(())
}

fn argon2(threads: usize, duration: Duration) -> Measured {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    use argon2::password_hash::rand_core::OsRng;
    let started = Instant::now();
    let measure_from = started + duration / 10;
    let stop_at = measure_from + duration;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut latency = histogram();
                let hasher = argon2::Argon2::default();
                while Instant::now() < stop_at {
                    let began = Instant::now();
                    let salt = SaltString::generate(&mut OsRng);
                    let hashed = hasher.hash_password(b"a password of a user", &salt);
                    if began >= measure_from && hashed.is_ok() {
                        latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                    }
                }
                latency
            })
        })
        .collect();
    let mut latency = histogram();
    for worker in workers {
        latency
            .add(worker.join().expect("a hashing thread"))
            .expect("same bounds");
    }
    (latency, 0, duration.as_secs_f64())
}

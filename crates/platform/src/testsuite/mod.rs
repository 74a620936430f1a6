//! Fixtures for tests against real infrastructure (feature `testsuite`), one file each:
//!
//! - `database.rs`, [`TestDatabase`]: a fresh PostgreSQL database per test, cloned from a
//!   template that was migrated once, dropped again when the fixture is dropped;
//! - `redis.rs`, [`RedisServer`]: a private `redis-server` a test may stop;
//! - `proxy.rs`, [`TcpProxy`]: a TCP hop that a test can sever, to cut a service off its
//!   database;
//! - `service.rs`, [`TestService`] and [`Harness`]: any service in-process on
//!   `127.0.0.1:0`, with bearer channels, tokens, health waits and query counts;
//! - `process.rs`, [`ServiceProcess`]: a service binary as a real process;
//! - `otlp.rs`, [`OtlpReceiver`] and [`BlackHole`]: a trace receiver as Jaeger runs one,
//!   and a collector that never answers;
//! - `replica.rs`, [`ReplicatedCluster`]: a primary of the test's own and a streaming
//!   replica of it, to pause, kill and restart.
//!
//! `TEST_DATABASE_URL` points at an admin database (default: the local cluster that
//! `scripts/infra.sh` starts); `TEST_REDIS_URL` at the shared Redis.

mod database;
mod otlp;
mod process;
mod proxy;
mod redis;
mod replica;
mod service;

pub use database::{TestDatabase, admin_url, lock_waiters};
pub use otlp::{BlackHole, OtlpReceiver, ReceivedSpan};
pub use process::ServiceProcess;
pub use proxy::TcpProxy;
pub use redis::{RedisServer, redis_url};
pub use replica::ReplicatedCluster;
pub use service::{
    Bearer, BearerChannel, Harness, JWT_SECRET, Options, TestService, admin_get, auth_args,
    create_tenant, free_addr, grpc_channel, health, wait_for_health,
};

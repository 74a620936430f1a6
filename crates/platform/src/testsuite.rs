//! Fixtures for tests against real infrastructure (feature `testsuite`).
//!
//! - [`TestDatabase`]: a fresh PostgreSQL database per test, cloned from a template that
//!   was migrated once, dropped again when the fixture is dropped;
//! - [`RedisServer`]: a private `redis-server` a test may stop;
//! - [`TcpProxy`]: a TCP hop that a test can sever, to cut a service off its database.
//!
//! - [`TestService`] and [`Harness`]: any service in-process on `127.0.0.1:0`, with bearer
//!   channels, tokens, health waits and query counts;
//! - [`ServiceProcess`]: a service binary as a real process.
//!
//! `TEST_DATABASE_URL` points at an admin database (default: the local cluster that
//! `scripts/infra.sh` starts); `TEST_REDIS_URL` at the shared Redis.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::QueryableByName;
use diesel::migration::MigrationSource;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::EmbeddedMigrations;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod process;
mod service;

pub use process::ServiceProcess;
pub use service::{
    Bearer, BearerChannel, Harness, JWT_SECRET, Options, SECRETS_KEY, TestService, admin_get,
    auth_args, create_tenant, free_addr, grpc_channel, health, wait_for_health,
};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";
/// Serialises template creation across the test processes that nextest runs in parallel.
const TEMPLATE_LOCK: i64 = 0x7465_6d70_6c61_7465; // "template"

/// The admin database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// The shared Redis for tests, if the environment has one.
pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// `admin_url` with its database replaced by `database`.
fn url_for(admin_url: &str, database: &str) -> String {
    let (base, _) = admin_url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{database}")
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    datname: String,
}

/// A database of its own for one test, migrated and empty.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Clones a fresh database from the template for `migrations` (creating that once).
    pub async fn create(service: &str, migrations: EmbeddedMigrations) -> Self {
        let admin_url = admin_url();
        let template = ensure_template(&admin_url, service, migrations).await;
        let name = format!("test_{service}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Self {
            url: url_for(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

/// One line of an EXPLAIN.
#[derive(diesel::QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// A raw query's single bigint column named `n`.
#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// One bytea column of a raw query's rows.
#[derive(diesel::QueryableByName)]
struct BytesRow {
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    value: Vec<u8>,
}

impl TestDatabase {
    /// A connection of the test's own, beside the service's pool.
    pub async fn connect(&self) -> AsyncPgConnection {
        connect(&self.url).await
    }

    /// Runs SQL statements (set-up such as bulk inserts).
    pub async fn execute(&self, sql: &str) {
        self.connect()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The plan PostgreSQL chooses for `query`, one line per plan node.
    pub async fn explain(&self, query: &str) -> String {
        use diesel_async::RunQueryDsl;
        let sql = format!("EXPLAIN {query}");
        let rows: Vec<PlanRow> = diesel::sql_query(&sql)
            .load(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|row| row.line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The value of a query returning one row with a bigint column named `n`
    /// (`SELECT count(*) AS n FROM …`).
    pub async fn count(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        let rows: Vec<CountRow> = diesel::sql_query(sql)
            .load(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        match rows.as_slice() {
            [row, ..] => row.n,
            [] => panic!("{sql}: no row"),
        }
    }

    /// The rows of a query returning one bytea column named `value`.
    pub async fn query_bytes(&self, sql: &str) -> Vec<Vec<u8>> {
        use diesel_async::RunQueryDsl;
        let rows: Vec<BytesRow> = diesel::sql_query(sql)
            .load(&mut self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|row| row.value).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee, so clean up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for cleanup");
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL for tests ({e}); run `scripts/infra.sh up` or `make test`")
    })
}

/// The template's name is a hash of the migrations' files, so every test binary of a run
/// shares one template and an edited migration never meets a stale one.
fn template_name(service: &str, migrations: &EmbeddedMigrations) -> String {
    let mut hasher = DefaultHasher::new();
    MigrationSource::<diesel::pg::Pg>::migrations(migrations)
        .expect("embedded migrations")
        .iter()
        .map(|m| m.name().to_string())
        .collect::<Vec<_>>()
        .hash(&mut hasher);
    if let Some(dir) = migrations_dir(service) {
        hash_files(&dir, &mut hasher);
    }
    format!("tmpl_{service}_{:016x}", hasher.finish())
}

/// `migrations/<service>` of the workspace the test was built in.
fn migrations_dir(service: &str) -> Option<std::path::PathBuf> {
    let start = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    start
        .ancestors()
        .map(|dir| dir.join("migrations").join(service))
        .find(|dir| dir.is_dir())
}

fn hash_files(dir: &std::path::Path, hasher: &mut DefaultHasher) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|read| read.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            hash_files(&path, hasher);
        } else if let Ok(content) = std::fs::read(&path) {
            path.file_name().hash(hasher);
            content.hash(hasher);
        }
    }
}

async fn ensure_template(admin_url: &str, service: &str, migrations: EmbeddedMigrations) -> String {
    use diesel_async::RunQueryDsl;
    let template = template_name(service, &migrations);
    let mut admin = connect(admin_url).await;
    admin
        .batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .await
        .expect("template lock");
    let existing: Vec<DatabaseName> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&template)
            .load(&mut admin)
            .await
            .expect("look up template");
    if existing.is_empty() {
        // Older templates of this service are leftovers of earlier builds.
        let stale: Vec<DatabaseName> =
            diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE $1")
                .bind::<Text, _>(format!("tmpl\\_{service}\\_%"))
                .load(&mut admin)
                .await
                .expect("list templates");
        for old in stale {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    old.datname
                ))
                .await;
        }
        let building = format!("{template}_building");
        // Two statements: several in one string would run as one transaction, which
        // DROP and CREATE DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .expect("drop a half-built template");
        admin
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .expect("create template");
        crate::db::run_migrations(&url_for(admin_url, &building), migrations)
            .await
            .expect("migrate template");
        admin
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .await
            .expect("publish template");
    }
    admin
        .batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .await
        .expect("template unlock");
    template
}

/// How many sessions of `database`, other than `conn`'s own, wait on a lock: lets a test
/// see that requests are blocked inside PostgreSQL (or no longer are).
pub async fn lock_waiters(conn: &mut AsyncPgConnection, database: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(database)
    .load(conn)
    .await
    .expect("read pg_stat_activity");
    rows[0].n
}

/// A private redis-server on a free port, stopped when dropped.
pub struct RedisServer {
    pub url: String,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = free_addr().await.port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).expect("redis url");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Self {
                    url,
                    child: Some(child),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .expect("redis-server is running");
        let sent = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Stops the server; what it held is gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A TCP proxy in front of `upstream` that a test can cut and restore, or stall: a
/// stalled proxy keeps every connection open and accepts new ones but forwards nothing,
/// as a server stopped with SIGSTOP would.
pub struct TcpProxy {
    pub addr: SocketAddr,
    severed: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<CancellationToken>>,
    stalled: tokio::sync::watch::Sender<bool>,
    refuse: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let severed = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (stalled, gate) = tokio::sync::watch::channel(false);
        let stop = CancellationToken::new();
        let refuse = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, current, stopped) = (severed.clone(), connections.clone(), stop.clone());
        let refusing = refuse.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else {
                    continue;
                };
                let refused = refusing
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refused || flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = current.lock().expect("proxy lock").clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (from_client, to_client) = client.into_split();
                    let (from_server, to_server) = server.into_split();
                    tokio::select! {
                        () = cut.cancelled() => {}
                        () = pump(from_client, to_server, gate.clone()) => {}
                        () = pump(from_server, to_client, gate) => {}
                    }
                });
            }
        });
        Self {
            addr,
            severed,
            connections,
            stalled,
            refuse,
            stop,
        }
    }

    /// Drops the next `count` connections as soon as they arrive.
    pub fn refuse_next(&self, count: usize) {
        self.refuse.store(count, Ordering::SeqCst);
    }

    /// Drops every open connection and refuses new ones.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::SeqCst);
        self.connections.lock().expect("proxy lock").cancel();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        *self.connections.lock().expect("proxy lock") = CancellationToken::new();
        self.severed.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes, keeping every connection open.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards bytes again, including what was held.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies `from` to `to` while the gate is open; holds what it read while it is shut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buf).await else {
            return;
        };
        if read == 0 || stalled.wait_for(|stalled| !stalled).await.is_err() {
            return;
        }
        if to.write_all(&buf[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.connections.lock().expect("proxy lock").cancel();
    }
}

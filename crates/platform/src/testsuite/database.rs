//! [`TestDatabase`]: a fresh PostgreSQL database per test, cloned from a template that was
//! migrated once, dropped again when the fixture is dropped.
//!
//! `TEST_DATABASE_URL` points at an admin database (default: the local cluster that
//! `scripts/infra.sh` starts).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use diesel::QueryableByName;
use diesel::migration::MigrationSource;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::EmbeddedMigrations;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";
/// Serialises template creation across the test processes that nextest runs in parallel.
const TEMPLATE_LOCK: i64 = 0x7465_6d70_6c61_7465; // "template"

/// The admin database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
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
    /// Its URL, for a service under test.
    pub url: String,
    /// Its name, also the Redis key prefix of services on it.
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Clones a fresh database from the template for `migrations` (creating that once).
    pub async fn create(service: &str, migrations: EmbeddedMigrations) -> Self {
        Self::create_on(&admin_url(), service, migrations).await
    }

    /// [`TestDatabase::create`] on the cluster whose admin database is `admin_url` (a
    /// cluster of the test's own, such as a [`super::ReplicatedCluster`]'s primary).
    pub async fn create_on(admin_url: &str, service: &str, migrations: EmbeddedMigrations) -> Self {
        let admin_url = admin_url.to_owned();
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

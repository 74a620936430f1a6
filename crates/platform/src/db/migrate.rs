//! Embedded diesel migrations, run over diesel-async (no libpq).

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::error::{Error, Result};

/// Advisory lock key that serialises replicas migrating the same database at once.
const MIGRATION_LOCK: i64 = 0x0061_6765_6e74_6963; // "agentic"

/// Applies pending migrations and returns the versions it ran.
pub async fn run_migrations(
    database_url: &str,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| Error::Unavailable(format!("cannot connect to migrate: {e}")))?;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
        let applied = conn
            .run_pending_migrations(migrations)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| Error::internal(format!("migration failed: {e}")));
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
        applied
    })
    .await
    .map_err(|e| Error::internal(format!("migration task failed: {e}")))?
}

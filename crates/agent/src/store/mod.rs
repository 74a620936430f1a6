//! The agent service's queries, one file per resource. Each takes a connection, and every
//! query filters by tenant: another tenant's rows are never read or written. Deleted agents
//! (`deleted_at` set) are invisible to everything but undelete.

mod agents;
mod mcp_servers;
mod workflow_runs;
mod workflows;

pub use agents::*;
pub use mcp_servers::*;
pub use workflow_runs::*;
pub use workflows::*;

use agentic_platform::error::{Error, Result, unique_violation};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Timestamptz, Uuid as SqlUuid};

diesel::define_sql_function! {
    /// PostgreSQL's `array_remove(array, element)`.
    fn array_remove(array: Array<SqlUuid>, element: SqlUuid) -> Array<SqlUuid>;
}

/// Maps a failed write to what a client must change.
fn write_error(error: diesel::result::Error) -> Error {
    match unique_violation(&error) {
        Some("agents_tenant_slug_live_key") => {
            Error::AlreadyExists("an agent with this slug already exists in the tenant".into())
        }
        Some("mcp_servers_tenant_name_key") => {
            Error::AlreadyExists("an MCP server with this name already exists in the tenant".into())
        }
        _ => Error::from(error),
    }
}

/// Fails with ABORTED unless the row is still as the caller read it: its etag (the
/// update time in microseconds) is unchanged.
fn check_etag(expected: Option<i64>, updated_at: DateTime<Utc>, what: &'static str) -> Result<()> {
    match expected {
        Some(expected) if expected != updated_at.timestamp_micros() => Err(Error::Aborted(what)),
        _ => Ok(()),
    }
}

/// The update time of a row's next version: now, but always at least a microsecond
/// after the last, so every write changes the etag.
fn next_update_time(last: DateTime<Utc>) -> DateTime<Utc> {
    let micros = Utc::now()
        .timestamp_micros()
        .max(last.timestamp_micros() + 1);
    DateTime::from_timestamp_micros(micros).unwrap_or(last)
}

/// `updated_at` moved forward in SQL, for writes that change many rows at once.
fn bumped_update_time() -> diesel::expression::SqlLiteral<Timestamptz> {
    diesel::dsl::sql("greatest(updated_at + interval '1 microsecond', now())")
}

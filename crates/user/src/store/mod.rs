//! The user service's queries, one file per resource. Each takes a connection, and every
//! user query filters by tenant: another tenant's rows are never read or written.

mod rate_limits;
mod tenants;
mod users;

pub use rate_limits::*;
pub use tenants::*;
pub use users::*;

use agentic_platform::error::{Error, foreign_key_violation, unique_violation};

/// Rows per INSERT in a batch: one round trip each, well under PostgreSQL's 65535
/// bind-parameter limit (8 columns × 500).
pub const INSERT_CHUNK: usize = 500;

/// Maps a failed write to the field a client must change.
fn write_error(error: diesel::result::Error) -> Error {
    match unique_violation(&error) {
        Some("users_tenant_email_key") => {
            Error::AlreadyExists("a user with this email already exists in the tenant".into())
        }
        Some("users_tenant_username_key") => {
            Error::AlreadyExists("a user with this username already exists in the tenant".into())
        }
        Some("tenants_slug_key") => {
            Error::AlreadyExists("a tenant with this slug already exists".into())
        }
        // A user's only reference is its tenant, which comes from the caller's token.
        _ if foreign_key_violation(&error).is_some() => {
            Error::FailedPrecondition("the tenant of this token does not exist".into())
        }
        _ => Error::from(error),
    }
}

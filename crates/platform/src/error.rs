//! One error type for every service, mapped to gRPC status codes in one place.
//!
//! Invalid input carries `google.rpc.BadRequest` field violations and names the fields in
//! the message too (for grpcurl users). Internal details are logged here and never sent.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    DeadlineExceeded(&'static str),
    #[error("{0}")]
    ResourceExhausted(&'static str),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Self::Internal(context.to_string())
    }
}

/// Characters of a field name or description sent back: violations may echo input
/// (an unknown mask path), and every trailer must fit a client's metadata limit.
const MAX_ECHOED_CHARS: usize = 80;
/// Violations sent back in one status; the rest are summarised by a count.
const MAX_VIOLATIONS_SENT: usize = 10;

/// `text` cut to `MAX_ECHOED_CHARS` characters, marked with `…` when cut.
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

/// `field: what is wrong; ...`, for messages and logs, bounded in size.
fn summary(violations: &[FieldViolation]) -> String {
    let mut parts: Vec<String> = violations
        .iter()
        .take(MAX_VIOLATIONS_SENT)
        .map(|v| format!("{}: {}", bounded(&v.field), bounded(&v.description)))
        .collect();
    if violations.len() > MAX_VIOLATIONS_SENT {
        parts.push(format!(
            "and {} more",
            violations.len() - MAX_VIOLATIONS_SENT
        ));
    }
    parts.join("; ")
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let summary = summary(&violations);
                let mut details = ErrorDetails::new();
                for v in violations.iter().take(MAX_VIOLATIONS_SENT) {
                    details.add_bad_request_violation(bounded(&v.field), bounded(&v.description));
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid argument: {summary}"),
                    details,
                )
            }
            Error::NotFound(resource) => Status::not_found(format!("{resource} not found")),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(
                    Code::Unavailable,
                    "service temporarily unavailable",
                    details,
                )
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// SQLSTATE 57014: statement_timeout fired (or the query was cancelled).
const QUERY_CANCELED: &str = "canceling statement";
/// SQLSTATE 57P01..57P03: the server is shutting down or restarting.
const SERVER_GOING_AWAY: &str = "terminating connection";

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::NotFound => Error::NotFound("resource"),
            // Constraint names are schema internals: logged, never sent.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                tracing::debug!(constraint = info.constraint_name(), "unique violation");
                Error::AlreadyExists("the resource already exists".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                tracing::debug!(constraint = info.constraint_name(), "foreign key violation");
                Error::FailedPrecondition("a resource this request refers to does not exist".into())
            }
            // The connection died or the server is going away: the database is unavailable.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Error::Unavailable(error.to_string()),
            DieselError::DatabaseError(_, info)
                if info.message().starts_with(SERVER_GOING_AWAY) =>
            {
                Error::Unavailable(error.to_string())
            }
            DieselError::DatabaseError(_, info) if info.message().starts_with(QUERY_CANCELED) => {
                Error::DeadlineExceeded("database statement timed out")
            }
            _ => Error::Internal(error.to_string()),
        }
    }
}

/// The name of the unique constraint a write violated, if that is why it failed.
pub fn unique_violation(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Some(info.constraint_name().unwrap_or(""))
        }
        _ => None,
    }
}

/// The name of the foreign key a write violated, if that is why it failed.
pub fn foreign_key_violation(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            Some(info.constraint_name().unwrap_or(""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_fields_in_message_and_details() {
        let status = Status::from(Error::InvalidArgument(vec![
            FieldViolation {
                field: "email".into(),
                description: "is not an email address".into(),
            },
            FieldViolation {
                field: "page_size".into(),
                description: "must not be negative".into(),
            },
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("email: is not an email address"));
        assert!(status.message().contains("page_size"));
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        assert_eq!(bad_request.field_violations.len(), 2);
        assert_eq!(bad_request.field_violations[0].field, "email");
    }

    #[test]
    fn echoed_input_is_bounded() {
        let huge = "x".repeat(10_000);
        let many: Vec<FieldViolation> = (0..1000)
            .map(|i| FieldViolation {
                field: format!("read_mask.paths[{i}]"),
                description: format!("unknown field {huge}"),
            })
            .collect();
        let status = Status::from(Error::InvalidArgument(many));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() < 2048, "{}", status.message().len());
        assert!(status.details().len() < 3072, "{}", status.details().len());
        assert!(status.message().contains("read_mask.paths[0]"));
        assert!(status.message().contains("and 990 more"));
    }

    #[test]
    fn internal_details_are_not_sent() {
        let status = Status::from(Error::internal("password=hunter2 connection refused"));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}

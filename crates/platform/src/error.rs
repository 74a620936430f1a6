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
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    DeadlineExceeded(&'static str),
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

/// `field: what is wrong; ...`, for messages and logs.
fn summary(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let summary = summary(&violations);
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid argument: {summary}"),
                    details,
                )
            }
            Error::NotFound(resource) => Status::not_found(format!("{resource} not found")),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::DeadlineExceeded(message) => Status::deadline_exceeded(message),
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
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Error::AlreadyExists(format!(
                    "already exists ({})",
                    info.constraint_name().unwrap_or("unique constraint")
                ))
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
    fn internal_details_are_not_sent() {
        let status = Status::from(Error::internal("password=hunter2 connection refused"));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}

//! One error type for every service, mapped to gRPC status codes in one place.
//!
//! Invalid input carries `google.rpc.BadRequest` field violations and names the fields in
//! the message too (for grpcurl users). Internal details are logged here and never sent.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The suite's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field as the client spells it (`agent.name`, `requests[3].email`).
    pub field: String,
    /// What is wrong with it, in lower case.
    pub description: String,
}

/// Every error of the suite; `From<Error> for tonic::Status` maps each to one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: every violated field (`INVALID_ARGUMENT` with a `BadRequest`).
    #[error("invalid argument: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such resource, or another tenant's (`NOT_FOUND`); names the kind.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken (`ALREADY_EXISTS`); says which.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is fine but the state is not (`FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won, e.g. an etag that no longer matches (`ABORTED`).
    #[error("{0}")]
    Aborted(&'static str),
    /// No valid token (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid token that may not do this (`PERMISSION_DENIED`).
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// The deadline passed, or a pool checkout timed out (`DEADLINE_EXCEEDED`).
    #[error("{0}")]
    DeadlineExceeded(&'static str),
    /// A limit was reached (`RESOURCE_EXHAUSTED`).
    #[error("{0}")]
    ResourceExhausted(&'static str),
    /// A rate limit was reached (`RESOURCE_EXHAUSTED` with `RetryInfo`, `QuotaFailure`
    /// and `ErrorInfo`).
    #[error("rate limit exceeded")]
    RateLimited(Vec<Rejection>),
    /// Busy for now: retry after the delay (`RESOURCE_EXHAUSTED` with `RetryInfo` and
    /// `grpc-retry-pushback-ms`). A model at capacity, a provider that said 429.
    #[error("{0}")]
    Overloaded(String, Duration),
    /// A dependency of this service (its database) is down (`UNAVAILABLE` with
    /// `RetryInfo`).
    #[error("{0}")]
    Unavailable(String),
    /// Another service this one needs is down; names it.
    #[error("the {0} service is unavailable")]
    DependencyUnavailable(&'static str),
    /// A bug or an unexpected failure (`INTERNAL`); the text is logged, never sent.
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

    /// An internal error with `context` for the log.
    pub fn internal(context: impl std::fmt::Display) -> Self {
        Self::Internal(context.to_string())
    }
}

/// Why a rate limit rejected a call.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The rule's name.
    pub rule: std::sync::Arc<str>,
    /// Whom it counted (`user:<id>`, `address:<ip>`, `tenant:<id>`, `account`).
    pub subject: String,
    /// Until the call would pass.
    pub retry: Duration,
}

/// The metadata key gRPC clients read a server's retry pushback from.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// `RESOURCE_EXHAUSTED` for `rejections`: the longest retry in `RetryInfo` and
/// `grpc-retry-pushback-ms`, every rule and subject in `QuotaFailure`, and `ErrorInfo`
/// `RATE_LIMIT_EXCEEDED` naming the rules.
pub fn rate_limited_status(rejections: &[Rejection]) -> Status {
    let retry = rejections.iter().map(|r| r.retry).max().unwrap_or_default();
    let rules: Vec<&str> = rejections.iter().map(|r| &*r.rule).collect();
    let mut details = ErrorDetails::with_retry_info(Some(retry));
    for rejection in rejections {
        details.add_quota_failure_violation(
            rejection.subject.clone(),
            format!("rate limit rule '{}' is spent", rejection.rule),
        );
    }
    details.set_error_info(
        "RATE_LIMIT_EXCEEDED",
        "agentic",
        std::collections::HashMap::from([("rules".to_owned(), rules.join(","))]),
    );
    let mut status = Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "rate limit exceeded ({}); retry in {:.1}s",
            rules.join(", "),
            retry.as_secs_f64()
        ),
        details,
    );
    if let Ok(value) = retry.as_millis().to_string().parse() {
        status.metadata_mut().insert(RETRY_PUSHBACK, value);
    }
    status
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
            Error::Aborted(message) => Status::aborted(message),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::RateLimited(rejections) => rate_limited_status(&rejections),
            Error::Overloaded(message, retry) => {
                let details = ErrorDetails::with_retry_info(Some(retry));
                let mut status =
                    Status::with_error_details(Code::ResourceExhausted, message, details);
                if let Ok(value) = retry.as_millis().to_string().parse() {
                    status.metadata_mut().insert(RETRY_PUSHBACK, value);
                }
                status
            }
            Error::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(
                    Code::Unavailable,
                    "service temporarily unavailable",
                    details,
                )
            }
            Error::DependencyUnavailable(dependency) => {
                let mut details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
                details.set_error_info(
                    "DEPENDENCY_UNAVAILABLE",
                    "agentic",
                    std::collections::HashMap::from([(
                        "dependency".to_owned(),
                        dependency.to_owned(),
                    )]),
                );
                Status::with_error_details(
                    Code::Unavailable,
                    format!("the {dependency} service is unavailable"),
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

/// Errors of SQLSTATE class 57 (operator intervention) reach us as
/// `DatabaseErrorKind::Unknown`: diesel-async maps only classes 23, 25 and 40 to kinds and
/// does not expose the code. These are the server's messages for them.
///
/// 57014 query_canceled (statement_timeout, or cancelled by request).
const QUERY_CANCELED: &str = "canceling statement";
/// 57P01 admin_shutdown and 57P02 crash_shutdown.
const SERVER_GOING_AWAY: &str = "terminating connection";
/// 57P03 cannot_connect_now (starting up, shutting down, in recovery).
const SERVER_NOT_READY: &str = "the database system is";

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        use DatabaseErrorKind as Kind;
        let DieselError::DatabaseError(kind, info) = &error else {
            return match error {
                DieselError::NotFound => Error::NotFound("resource"),
                other => Error::Internal(other.to_string()),
            };
        };
        // Constraint names are schema internals: logged, never sent.
        let constraint = info.constraint_name();
        match kind {
            Kind::UniqueViolation => {
                tracing::debug!(constraint, "unique violation");
                Error::AlreadyExists("the resource already exists".into())
            }
            Kind::ForeignKeyViolation => {
                tracing::debug!(constraint, "foreign key violation");
                Error::FailedPrecondition("a resource this request refers to does not exist".into())
            }
            Kind::SerializationFailure => {
                Error::Aborted("the write conflicted with another; retry it")
            }
            // The connection died, or the server went read-only (a failover under way).
            Kind::ClosedConnection | Kind::UnableToSendCommand | Kind::ReadOnlyTransaction => {
                Error::Unavailable(error.to_string())
            }
            _ if info.message().starts_with(QUERY_CANCELED) => {
                Error::DeadlineExceeded("database statement timed out")
            }
            _ if info.message().starts_with(SERVER_GOING_AWAY)
                || info.message().starts_with(SERVER_NOT_READY) =>
            {
                Error::Unavailable(error.to_string())
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

/// The label of a gRPC code in metrics, spelled as go-grpc-prometheus and grpc-go spell
/// it (`OK`, `Canceled`, `InvalidArgument`, …), so the ecosystem's queries work as they
/// are; without formatting on the request path.
pub(crate) fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
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

    /// A database error as the driver reports it.
    struct DbError {
        message: &'static str,
        constraint: Option<&'static str>,
    }

    impl diesel::result::DatabaseErrorInformation for DbError {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            Some("users")
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn status_of(kind: DatabaseErrorKind, message: &'static str) -> Status {
        let info = DbError {
            message,
            constraint: Some("users_tenant_email_key"),
        };
        Status::from(Error::from(DieselError::DatabaseError(
            kind,
            Box::new(info),
        )))
    }

    #[test]
    fn database_errors_map_to_codes_without_schema_names() {
        use DatabaseErrorKind as Kind;
        let cases = [
            (
                Kind::UniqueViolation,
                "duplicate key value",
                Code::AlreadyExists,
            ),
            (
                Kind::ForeignKeyViolation,
                "violates foreign key",
                Code::FailedPrecondition,
            ),
            (
                Kind::SerializationFailure,
                "could not serialize",
                Code::Aborted,
            ),
            (
                Kind::ReadOnlyTransaction,
                "read-only transaction",
                Code::Unavailable,
            ),
            (Kind::ClosedConnection, "closed", Code::Unavailable),
            (
                Kind::Unknown,
                "canceling statement due to statement timeout",
                Code::DeadlineExceeded,
            ),
            (
                Kind::Unknown,
                "terminating connection due to administrator command",
                Code::Unavailable,
            ),
            (
                Kind::Unknown,
                "the database system is shutting down",
                Code::Unavailable,
            ),
            (
                Kind::CheckViolation,
                "violates check constraint",
                Code::Internal,
            ),
        ];
        for (kind, message, code) in cases {
            let status = status_of(kind, message);
            assert_eq!(status.code(), code, "{message}");
            assert!(
                !status.message().contains("users_tenant_email_key"),
                "{status:?}"
            );
            assert!(!status.message().contains("users"), "{status:?}");
        }
    }

    #[test]
    fn internal_details_are_not_sent() {
        let status = Status::from(Error::internal("password=hunter2 connection refused"));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}

//! Calls to other services of the suite.
//!
//! One [`Dependency`] per target service, built from the caller's configuration (its
//! `<SERVICE>_SERVICE_URL` settings, which each calling service declares in its own
//! settings, and the shared [`ClientArgs`]): a lazily connected channel with HTTP/2
//! keep-alive, balanced per request over every address the URLs name. Every call
//!
//! - carries credentials: the incoming request's bearer token, or a service token;
//! - carries the W3C trace context of the current span;
//! - has a deadline a little before the incoming one (the server's request timeout when
//!   the caller set none), enforced here as well as sent;
//! - goes through the dependency's circuit breaker, so a dead dependency costs
//!   microseconds rather than a timeout per request;
//! - is retried on `UNAVAILABLE` with jittered backoff within the deadline if it is a
//!   read; writes are never retried.
//!
//! A dependency that is down makes the call fail with `UNAVAILABLE`, naming the
//! dependency in `google.rpc.ErrorInfo`. Readiness is not affected: it follows only the
//! service's own database.

mod bearer;
mod discovery;

pub use bearer::Bearer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use opentelemetry::propagation::Injector;
use rand::Rng;
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::Tokens;
use crate::breaker::{Breaker, Permit};
use crate::error::{Error, Result};
use crate::hop::{COUNTED_HEADER, Counted};

/// How calls to other services behave, for services that call others (flattened into
/// their own settings beside the URLs of the services they call).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Retries of a read that failed with UNAVAILABLE (within its deadline).
    #[arg(long, env = "CLIENT_RETRIES", default_value_t = 2)]
    pub client_retries: u32,
    /// Consecutive failures that open a dependency's circuit breaker.
    #[arg(long, env = "CLIENT_BREAKER_THRESHOLD", default_value_t = 5)]
    pub client_breaker_threshold: u32,
    /// How long an open breaker fails calls at once before letting one probe through.
    #[arg(long, env = "CLIENT_BREAKER_COOLDOWN", default_value = "2s", value_parser = humantime::parse_duration)]
    pub client_breaker_cooldown: Duration,
    /// Longest wait for a connection to a dependency.
    #[arg(long, env = "CLIENT_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub client_connect_timeout: Duration,
}

impl Default for ClientArgs {
    fn default() -> Self {
        crate::config::from_flags(&[])
    }
}

/// The RPC a call makes: its service and method (for the client span and metrics) and
/// whether it may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    /// The full service name (`agentic.user.v1.UserService`).
    pub service: &'static str,
    /// The method's name (`GetUser`), the `grpc_method` label of the client metrics.
    pub method: &'static str,
    /// Whether it may be repeated.
    pub idempotency: Idempotency,
}

impl Rpc {
    /// A read of `service`'s `method`: retried on `UNAVAILABLE`.
    pub const fn read(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            idempotency: Idempotency::Read,
        }
    }

    /// A write of `service`'s `method`: sent once.
    pub const fn write(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            idempotency: Idempotency::Write,
        }
    }
}

/// Whether a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads: retried on UNAVAILABLE.
    Read,
    /// Writes: sent once.
    Write,
}

/// The bearer credentials an outgoing call carries, and the proof that the caller was
/// already counted against its rate limits ([`crate::hop`]).
#[derive(Debug, Clone)]
pub struct Credentials {
    authorization: MetadataValue<Ascii>,
    counted: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    /// The incoming request's own `authorization`: the callee sees the same caller, and
    /// does not count it again when this service counted it.
    pub fn of<T>(incoming: &Request<T>) -> Result<Self> {
        let authorization = incoming
            .metadata()
            .get("authorization")
            .cloned()
            .ok_or(Error::Unauthenticated("missing bearer token"))?;
        let counted = incoming
            .extensions()
            .get::<Counted>()
            .and_then(|counted| counted.proof(authorization.as_bytes()).parse().ok());
        Ok(Self {
            authorization,
            counted,
        })
    }

    /// A token of this service's own (`subject`), for calls made on nobody's behalf
    /// (principal checks, background work). They are the suite's own calls, made for
    /// requests counted where they came in, so the token travels with a proof of that
    /// and the callee does not count it: otherwise every check would spend one budget
    /// of the service's subject, and a burst of new users would exhaust it.
    pub fn service(
        tokens: &Tokens,
        subject: &str,
        tenant: Option<uuid::Uuid>,
        role: &str,
    ) -> Result<Self> {
        let (token, _) = tokens.issue(subject, tenant, role, Some(Duration::from_secs(300)))?;
        let authorization: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::internal("a minted token is not a header value"))?;
        let counted = tokens
            .hop_key()
            .prove(authorization.as_bytes())
            .parse::<MetadataValue<Ascii>>()
            .ok();
        Ok(Self {
            authorization,
            counted,
        })
    }
}

/// Why a call to a dependency produced no answer.
#[derive(Debug)]
pub enum CallError {
    /// The dependency is down (or its breaker is open).
    Unavailable(&'static str),
    /// No answer before the deadline.
    DeadlineExceeded(&'static str),
    /// The dependency answered with an error of its own.
    Status(Status),
}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Unavailable(dependency) => Error::DependencyUnavailable(dependency),
            CallError::DeadlineExceeded(_) => {
                Error::DeadlineExceeded("a dependency did not answer in time")
            }
            CallError::Status(status) => match status.code() {
                Code::Unavailable => Error::Unavailable(format!(
                    "a dependency answered that its own dependency is down: {}",
                    status.message()
                )),
                Code::Unauthenticated => Error::Unauthenticated("the token was refused"),
                Code::PermissionDenied => {
                    Error::PermissionDenied("the token may not do what this call needs")
                }
                _ => Error::internal(format!("a dependency answered {status:?}")),
            },
        }
    }
}

/// The time a callee gets: the caller's remaining time less a margin for the answer to
/// travel back (5%, at most 50 ms).
fn callee_budget(remaining: Duration) -> Duration {
    remaining.saturating_sub((remaining / 20).min(Duration::from_millis(50)))
}

/// The deadline of calls made outside any request (the server's default request timeout).
const UNSCOPED_TIMEOUT: Duration = Duration::from_secs(10);

/// First backoff before a retry; doubled each time, with full jitter.
const BACKOFF: Duration = Duration::from_millis(25);

/// One service this one calls.
#[derive(Clone)]
pub struct Dependency {
    name: &'static str,
    /// The first URL's host and port, for the client span's `server.*` attributes.
    address: Arc<(String, u16)>,
    channel: Channel,
    breaker: Arc<Breaker>,
    retries: u32,
}

impl Dependency {
    /// A dependency called `name` at `urls`; connects on first use.
    pub fn new(name: &'static str, urls: &str, args: &ClientArgs) -> Result<Self> {
        Ok(Self {
            name,
            address: Arc::new(first_address(urls)),
            channel: discovery::channel(urls, args.client_connect_timeout)?,
            breaker: Arc::new(Breaker::new(
                args.client_breaker_threshold,
                args.client_breaker_cooldown,
            )),
            retries: args.client_retries,
        })
    }

    /// The dependency's name, in errors and metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether calls fail at once for now.
    pub fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Calls the dependency: `call` sends the request on a client built from the
    /// channel, e.g. `|channel, request| async move { AgentServiceClient::new(channel).get_agent(request).await }`.
    /// Each call counts once in `grpc_client_handled_total` (by dependency, method and
    /// final code) and `grpc_client_handling_seconds`, retries included; each attempt in
    /// `client_calls_total`.
    pub async fn call<M, T, F, Fut>(
        &self,
        rpc: Rpc,
        credentials: &Credentials,
        message: M,
        call: F,
    ) -> Result<T, CallError>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        // A CLIENT span per call (OpenTelemetry RPC conventions); the callee's server
        // span is its child, through the traceparent each attempt carries.
        let span = tracing::info_span!(
            "rpc.client",
            otel.name = %format_args!("{}/{}", rpc.service, rpc.method),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = rpc.service,
            rpc.method = rpc.method,
            server.address = %self.address.0,
            server.port = self.address.1,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let outcome = self
            .attempts(rpc, credentials, message, call)
            .instrument(span.clone())
            .await;
        let code = match &outcome {
            Ok(_) => Code::Ok,
            Err(CallError::Status(status)) => status.code(),
            Err(CallError::Unavailable(_)) => Code::Unavailable,
            Err(CallError::DeadlineExceeded(_)) => Code::DeadlineExceeded,
        };
        span.record("rpc.grpc.status_code", code as i32);
        if code != Code::Ok {
            span.record("otel.status_code", "ERROR");
        }
        metrics::counter!(
            "grpc_client_handled_total",
            "dependency" => self.name,
            "grpc_method" => rpc.method,
            "grpc_code" => crate::error::code_label(code)
        )
        .increment(1);
        metrics::histogram!(
            "grpc_client_handling_seconds",
            "dependency" => self.name,
            "grpc_method" => rpc.method
        )
        .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// The attempts of one call, retries of reads included.
    async fn attempts<M, T, F, Fut>(
        &self,
        rpc: Rpc,
        credentials: &Credentials,
        message: M,
        mut call: F,
    ) -> Result<T, CallError>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = tokio::time::Instant::now();
        let budget = crate::request::remaining().unwrap_or(UNSCOPED_TIMEOUT);
        let deadline = started + callee_budget(budget);
        let attempts = match rpc.idempotency {
            Idempotency::Read => self.retries + 1,
            Idempotency::Write => 1,
        };
        let mut backoff = BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(self.finish(CallError::DeadlineExceeded(self.name)));
            }
            let permit = self.breaker.permit();
            if permit == Permit::Refuse {
                return Err(self.finish(CallError::Unavailable(self.name)));
            }
            let request = self.request(message.clone(), credentials, left);
            let outcome = tokio::time::timeout(left, call(self.channel.clone(), request)).await;
            let error = match outcome {
                Ok(Ok(response)) => {
                    self.breaker.succeeded(permit);
                    record(self.name, Code::Ok);
                    // What the callee wrote, this request's later reads must see.
                    if let Some(lsn) = written_position(response.metadata()) {
                        crate::request::wrote_at(lsn);
                    }
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded("no answer before the deadline"),
            };
            let dependency_failed =
                matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded)
                    && !blames_its_own_dependency(&error);
            if !dependency_failed {
                // An answer: the dependency works, whatever it said.
                self.breaker.succeeded(permit);
                record(self.name, error.code());
                return Err(CallError::Status(error));
            }
            if self.breaker.failed(permit) {
                tracing::warn!(dependency = self.name, "circuit breaker open");
                metrics::counter!("client_breaker_opened_total", "dependency" => self.name)
                    .increment(1);
            }
            record(self.name, error.code());
            let sleep = rand::rng().random_range(Duration::ZERO..=backoff);
            let retryable = error.code() == Code::Unavailable
                && attempt < attempts
                && tokio::time::Instant::now() + sleep + BACKOFF < deadline;
            if !retryable {
                return Err(match error.code() {
                    Code::Unavailable => CallError::Unavailable(self.name),
                    _ => CallError::DeadlineExceeded(self.name),
                });
            }
            tokio::time::sleep(sleep).await;
            backoff *= 2;
        }
    }

    fn finish(&self, error: CallError) -> CallError {
        record(
            self.name,
            match error {
                CallError::DeadlineExceeded(_) => Code::DeadlineExceeded,
                _ => Code::Unavailable,
            },
        );
        error
    }

    /// The request of one attempt: credentials, trace context and the deadline.
    fn request<M>(&self, message: M, credentials: &Credentials, timeout: Duration) -> Request<M> {
        let mut request = Request::new(message);
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", credentials.authorization.clone());
        if let Some(counted) = &credentials.counted {
            metadata.insert(COUNTED_HEADER, counted.clone());
        }
        // The callee's reads must see what this request's caller and writes saw.
        let min_lsn = crate::request::min_lsn();
        if min_lsn > 0
            && let Ok(value) = crate::db::Lsn(min_lsn).to_string().parse()
        {
            metadata.insert(crate::request::MIN_LSN_HEADER, value);
        }
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(metadata));
        });
        request
    }
}

/// The WAL position a callee's answer says its writes reached (`x-min-lsn`).
fn written_position(metadata: &tonic::metadata::MetadataMap) -> Option<u64> {
    let value = metadata
        .get(crate::request::MIN_LSN_HEADER)?
        .to_str()
        .ok()?;
    value.parse::<crate::db::Lsn>().ok().map(|lsn| lsn.0)
}

/// The delay an HTTP server asked for in `Retry-After` (seconds; the date form is not
/// used by the model servers the suite calls).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Whether `status` is a callee's answer that a dependency of its own is down
/// (`ErrorInfo` `DEPENDENCY_UNAVAILABLE`): the callee works, so its breaker stays closed
/// and the call is not repeated.
fn blames_its_own_dependency(status: &Status) -> bool {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .is_some_and(|info| info.reason == "DEPENDENCY_UNAVAILABLE")
}

/// The host and port of the first of `urls` (port 80 or 443 when it names none).
fn first_address(urls: &str) -> (String, u16) {
    let first = urls.split(',').map(str::trim).next().unwrap_or_default();
    match first.parse::<http::Uri>() {
        Ok(uri) => {
            let default = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            (
                uri.host().unwrap_or_default().to_owned(),
                uri.port_u16().unwrap_or(default),
            )
        }
        Err(_) => (first.to_owned(), 0),
    }
}

fn record(dependency: &'static str, code: Code) {
    metrics::counter!(
        "client_calls_total",
        "dependency" => dependency,
        "code" => crate::error::code_label(code)
    )
    .increment(1);
}

/// Writes trace-context headers into gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callee_gets_the_callers_time_less_a_small_margin() {
        assert_eq!(
            callee_budget(Duration::from_millis(300)),
            Duration::from_millis(285)
        );
        assert_eq!(
            callee_budget(Duration::from_secs(10)),
            Duration::from_millis(9950)
        );
        assert_eq!(callee_budget(Duration::ZERO), Duration::ZERO);
    }
}

//! Read-your-writes across database replicas: the WAL position a caller's reads must
//! see comes in `x-min-lsn`; the position the request's writes reached goes back out in
//! the same header, so the caller can pass it to its next call (to this service or
//! another). The position lives in a task-local for the request ([`crate::request`]),
//! where the pool's routed reads and the clients' calls find it.
//!
//! Only requests that carry the header, or reach a service whose database has replicas
//! (where writes record positions), pay for the scope.

use std::task::{Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};

use super::Boxed;
use crate::db::Lsn;
use crate::request::{MIN_LSN_HEADER, with_min_lsn, written_lsn};

/// [`MIN_LSN_HEADER`], parsed once.
static MIN_LSN: http::HeaderName = http::HeaderName::from_static(MIN_LSN_HEADER);

/// Scopes each request's WAL positions; answers a malformed `x-min-lsn` with
/// `INVALID_ARGUMENT` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadYourWritesLayer {
    /// Whether this service's writes record positions (its database has replicas).
    tracking: bool,
}

impl ReadYourWritesLayer {
    /// `tracking` when the service's database has replicas.
    pub fn new(tracking: bool) -> Self {
        Self { tracking }
    }
}

impl<S> Layer<S> for ReadYourWritesLayer {
    type Service = ReadYourWritesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadYourWritesService {
            inner,
            tracking: self.tracking,
        }
    }
}

/// The service [`ReadYourWritesLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct ReadYourWritesService<S> {
    inner: S,
    tracking: bool,
}

impl<S, B, ResBody> Service<http::Request<B>> for ReadYourWritesService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Requests outside the scheme pass straight through.
    type Future = Either<S::Future, Boxed<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let asked = match request.headers().get(&MIN_LSN) {
            None => None,
            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<Lsn>().ok()) {
                Some(lsn) => Some(lsn),
                None => return Either::Right(Box::pin(refuse(request))),
            },
        };
        if asked.is_none() && !self.tracking {
            return Either::Left(self.inner.call(request));
        }
        let fut = self.inner.call(request);
        Either::Right(Box::pin(with_min_lsn(
            asked.map_or(0, |lsn| lsn.0),
            async move {
                let mut response = fut.await?;
                if let Some(written) = written_lsn() {
                    let value = Lsn(written).to_string();
                    if let Ok(value) = http::HeaderValue::from_str(&value) {
                        response.headers_mut().insert(MIN_LSN.clone(), value);
                    }
                }
                Ok(response)
            },
        )))
    }
}

/// `INVALID_ARGUMENT` for a malformed `x-min-lsn`, once the request's body is in.
async fn refuse<B, ResBody, E>(request: http::Request<B>) -> Result<http::Response<ResBody>, E>
where
    B: http_body::Body + Send,
    ResBody: Default,
{
    let status = crate::error::Error::invalid(
        MIN_LSN_HEADER,
        "not a WAL position (X/Y, hexadecimal, as pg_current_wal_lsn() prints it)",
    );
    let response = tonic::Status::from(status).into_http();
    Ok(super::early::after_body(request, response).await)
}

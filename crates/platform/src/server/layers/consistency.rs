//! Strong reads: a caller that must see every write acknowledged anywhere asks with
//! `x-read-consistency: strong`; its reads then skip both cache levels and read the
//! database. [`ConsistencyLayer`] carries the choice to the cache through a task-local,
//! as the deadline layer does the deadline (see [`crate::request`]).

use std::task::{Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};

use super::Boxed;

use crate::request::{CONSISTENCY_HEADER, strong};

/// [`CONSISTENCY_HEADER`], parsed once.
static CONSISTENCY: http::HeaderName = http::HeaderName::from_static(CONSISTENCY_HEADER);

/// Runs requests that ask for `x-read-consistency: strong` with strong reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsistencyLayer;

impl<S> Layer<S> for ConsistencyLayer {
    type Service = ConsistencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsistencyService { inner }
    }
}

/// The service [`ConsistencyLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct ConsistencyService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for ConsistencyService<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Only strong requests pay for a boxed future.
    type Future = Either<S::Future, Boxed<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let wants_strong = request
            .headers()
            .get(&CONSISTENCY)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"strong"));
        let fut = self.inner.call(request);
        if wants_strong {
            Either::Right(Box::pin(strong(fut)))
        } else {
            Either::Left(fut)
        }
    }
}

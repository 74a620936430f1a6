//! The principal check: after auth, a call whose token's tenant or user no longer exists
//! or is suspended is refused (see [`crate::principal`]). Platform tokens, public methods
//! and calls without a caller pass untouched, and so does everything when the check is
//! off (`PRINCIPAL_CHECK=false`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};

use super::Boxed;

use crate::auth::Caller;
use crate::principal::PrincipalCheck;

/// Runs [`PrincipalCheck`] before the call, when there is one.
#[derive(Clone, Default)]
pub struct PrincipalLayer {
    check: Option<PrincipalCheck>,
}

impl PrincipalLayer {
    /// A layer running `check`; `None` lets every call through.
    pub fn new(check: Option<PrincipalCheck>) -> Self {
        Self { check }
    }
}

impl<S> Layer<S> for PrincipalLayer {
    type Service = PrincipalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PrincipalService {
            inner,
            check: self.check.clone(),
        }
    }
}

/// The service [`PrincipalLayer`] wraps around the inner one.
#[derive(Clone)]
pub struct PrincipalService<S> {
    inner: S,
    check: Option<PrincipalCheck>,
}

impl<S, B, RB> Service<http::Request<B>> for PrincipalService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Only checked calls pay for a boxed future.
    type Future = Either<S::Future, Boxed<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let caller = request.extensions().get::<Arc<Caller>>().cloned();
        let (Some(check), Some(caller)) = (&self.check, caller) else {
            return Either::Left(self.inner.call(request));
        };
        if !PrincipalCheck::applies_to(&caller) {
            return Either::Left(self.inner.call(request));
        }
        // The ready inner service goes with the call; a clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let check = check.clone();
        Either::Right(Box::pin(async move {
            match check.check(&caller).await {
                Ok(()) => inner.call(request).await,
                Err(error) => {
                    let response = tonic::Status::from(error).into_http();
                    Ok(super::early::after_body(request, response).await)
                }
            }
        }))
    }
}

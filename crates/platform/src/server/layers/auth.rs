//! Bearer-token auth: every call but health, reflection and the methods a service
//! declares public must carry `authorization: Bearer <token>` with a token [`Tokens`]
//! verifies; the verified [`Caller`] goes into the request's extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};

use super::Boxed;

use crate::auth::{Caller, Tokens};
use crate::error::{Error, Result};

/// Paths that never need a token: probes and discovery.
pub(crate) const ALWAYS_PUBLIC: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Verifies bearer tokens on every call but the public ones.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Arc<Tokens>,
    public_methods: Arc<[&'static str]>,
}

impl AuthLayer {
    /// `public_methods` are full paths (`/pkg.Service/Method`) callable without a token.
    pub fn new(tokens: Arc<Tokens>, public_methods: &[&'static str]) -> Self {
        Self {
            tokens,
            public_methods: public_methods.into(),
        }
    }

    fn is_public(&self, path: &str) -> bool {
        ALWAYS_PUBLIC.iter().any(|prefix| path.starts_with(prefix))
            || self.public_methods.contains(&path)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the inner one.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B, RB> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Only refused calls pay for a boxed future (answered once the request's body is
    /// read, [`super::early`]).
    type Future = Either<Boxed<S::Response, S::Error>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !self.layer.is_public(request.uri().path()) {
            match self.authenticate(&request) {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(error) => {
                    let response = tonic::Status::from(error).into_http();
                    return Either::Left(Box::pin(async move {
                        Ok(super::early::after_body(request, response).await)
                    }));
                }
            }
        }
        Either::Right(self.inner.call(request))
    }
}

impl<S> AuthService<S> {
    fn authenticate<B>(&self, request: &http::Request<B>) -> Result<Arc<Caller>> {
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or(Error::Unauthenticated("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or(Error::Unauthenticated(
                "authorization must be 'Bearer <token>'",
            ))?;
        self.layer.tokens.verify(token.trim())
    }
}

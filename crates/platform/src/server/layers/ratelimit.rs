//! Rate limits: after auth (rules count the token's user or tenant, or the address of a
//! call without a token), every call but health and reflection is decided by the
//! [`RateLimiter`]; the limit state goes on the response, and a call over a limit is
//! answered `RESOURCE_EXHAUSTED` at once. Calls another service makes on a counted
//! caller's behalf pass uncounted (see [`crate::hop`]).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use pin_project_lite::pin_project;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use super::Boxed;
use super::auth::ALWAYS_PUBLIC;
use crate::auth::Caller;
use crate::error::rate_limited_status;
use crate::hop::{COUNTED_HEADER, Counted};
use crate::ratelimit::headers::Fields;
use crate::ratelimit::{Decision, RateLimiter, headers};

/// Applies a [`RateLimiter`], when there is one.
#[derive(Clone, Default)]
pub struct RateLimitLayer {
    limiter: Option<RateLimiter>,
}

impl RateLimitLayer {
    /// A layer applying `limiter`; `None` lets every call through.
    pub fn new(limiter: Option<RateLimiter>) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around the inner one.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<RateLimiter>,
}

impl<S, B, RB> Service<http::Request<B>> for RateLimitService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body + Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Calls decided in memory pay for no boxed future.
    type Future = Either<Decorated<S::Future>, Boxed<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(limiter) = &self.limiter else {
            return pass(self.inner.call(request));
        };
        let path = request.uri().path();
        if ALWAYS_PUBLIC.iter().any(|prefix| path.starts_with(prefix)) {
            return pass(self.inner.call(request));
        }
        let caller = request.extensions().get::<Arc<Caller>>();
        let has_caller = caller.is_some();
        if has_caller && counted_upstream(limiter, &request) {
            request
                .extensions_mut()
                .insert(Counted(limiter.hop_key().clone()));
            return pass(self.inner.call(request));
        }
        let address = peer_ip(&request);
        let Some(begun) = limiter.begin(path, caller.map(|caller| &**caller), address) else {
            return pass(self.inner.call(request));
        };
        if has_caller {
            request
                .extensions_mut()
                .insert(Counted(limiter.hop_key().clone()));
        }
        match begun {
            Ok(decision) if decision.allowed => Either::Left(Decorated {
                inner: self.inner.call(request),
                fields: decision.fields,
            }),
            Ok(decision) => Either::Right(Box::pin(async move {
                Ok(super::early::after_body(request, rejected(&decision)).await)
            })),
            Err(pending) => {
                // The ready inner service goes with the call; a clone waits for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let limiter = limiter.clone();
                Either::Right(Box::pin(async move {
                    let decision = limiter.finish(pending).await;
                    if !decision.allowed {
                        return Ok(super::early::after_body(request, rejected(&decision)).await);
                    }
                    let mut response = inner.call(request).await?;
                    headers::insert(&decision, response.headers_mut());
                    Ok(response)
                }))
            }
        }
    }
}

fn pass<F, R>(future: F) -> Either<Decorated<F>, R> {
    Either::Left(Decorated {
        inner: future,
        fields: None,
    })
}

/// The proof's header name, parsed once (a lookup by `&str` parses it on every call).
static COUNTED: http::HeaderName = http::HeaderName::from_static(COUNTED_HEADER);

/// Whether a service counted this call's caller already and proves it.
fn counted_upstream<B>(limiter: &RateLimiter, request: &http::Request<B>) -> bool {
    let headers = request.headers();
    let Some(proof) = headers.get(&COUNTED) else {
        return false;
    };
    headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|authorization| {
            limiter
                .hop_key()
                .verify(authorization.as_bytes(), proof.as_bytes())
        })
}

fn peer_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
        .map(|address| address.ip())
}

/// The trailers-only answer to a rejected call, with the limit state.
fn rejected<RB: Default>(decision: &Decision) -> http::Response<RB> {
    let status = rate_limited_status(&decision.rejections);
    let (mut parts, ()) = status.into_http::<()>().into_parts();
    headers::insert(decision, &mut parts.headers);
    http::Response::from_parts(parts, RB::default())
}

pin_project! {
    /// The inner call's future, whose response gets the limit state.
    pub struct Decorated<F> {
        #[pin]
        inner: F,
        fields: Option<Fields>,
    }
}

impl<F, RB, E> Future for Decorated<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut output = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(fields)) = (&mut output, this.fields.take()) {
            fields.insert_into(response.headers_mut());
        }
        Poll::Ready(output)
    }
}

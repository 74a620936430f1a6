//! A handler that panics answers `INTERNAL` instead of resetting the stream.
//!
//! tower-http's `CatchPanic` does the same but boxes every response body into its own
//! body type, an allocation per response on the suite's hottest path; this layer keeps
//! the inner service's response type, so a tonic body passes through untouched.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// Answers `INTERNAL` (and counts `grpc_server_panics_total`) for a panic in the inner
/// service's `call` or in its future.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service [`CatchPanicLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, Req, B> Service<Req> for CatchPanic<S>
where
    S: Service<Req, Response = http::Response<B>>,
    B: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Caught<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => Caught::Running { future },
            Err(panic) => Caught::Panicked {
                response: Some(internal(panic)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner future, or the answer to a panic in `call`. (Its fields say what their
    /// variants say; pin-project-lite takes no doc comments on them.)
    #[allow(missing_docs)]
    #[project = CaughtProj]
    pub enum Caught<F, B> {
        /// The handler is running.
        Running { #[pin] future: F },
        /// The handler panicked; its `INTERNAL` answer, until taken.
        Panicked { response: Option<http::Response<B>> },
    }
}

impl<F, B, E> Future for Caught<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project() {
            CaughtProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(poll) => return poll,
                    Err(panic) => internal(panic),
                }
            }
            CaughtProj::Panicked { response } => response.take().expect("polled after done"),
        };
        Poll::Ready(Ok(response))
    }
}

fn internal<B: Default>(_panic: Box<dyn Any + Send + 'static>) -> http::Response<B> {
    tracing::error!("handler panicked");
    metrics::counter!("grpc_server_panics_total").increment(1);
    tonic::Status::internal("internal error").into_http()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tonic::body::Body;
    use tower::ServiceExt;

    use super::*;

    fn request() -> http::Request<()> {
        http::Request::builder()
            .uri("/agentic.test.v1.Test/Boom")
            .body(())
            .expect("request")
    }

    fn code_of<B>(response: &http::Response<B>) -> tonic::Code {
        tonic::Status::from_header_map(response.headers())
            .expect("grpc-status header")
            .code()
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_internal() {
        let panics_later = tower::service_fn(|_: http::Request<()>| async {
            if true {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(http::Response::new(Body::default()))
        });
        let response = CatchPanicLayer
            .layer(panics_later)
            .oneshot(request())
            .await
            .expect("a response, not a dropped stream");
        assert_eq!(code_of(&response), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn a_service_that_panics_when_called_answers_internal() {
        #[derive(Clone)]
        struct PanicsOnCall;
        impl Service<http::Request<()>> for PanicsOnCall {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Self::Response, Infallible>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Request<()>) -> Self::Future {
                panic!("bug before the future")
            }
        }
        let response = CatchPanicLayer
            .layer(PanicsOnCall)
            .oneshot(request())
            .await
            .expect("a response");
        assert_eq!(code_of(&response), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn answers_pass_through_untouched() {
        let answers = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(tonic::Status::not_found("no such user").into_http::<Body>())
        });
        let response = CatchPanicLayer
            .layer(answers)
            .oneshot(request())
            .await
            .expect("a response");
        assert_eq!(code_of(&response), tonic::Code::NotFound);
    }
}

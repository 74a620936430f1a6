//! The caller's gRPC deadline, visible to everything a request does.
//!
//! [`DeadlineLayer`] reads the caller's `grpc-timeout` header (capped by the server's own
//! request timeout) and runs the request inside a task-local scope, so the pool can cap
//! checkout waits and statement timeouts by [`crate::request::remaining`] without
//! threading a value through every call. Requests without a deadline get the server's request timeout, so
//! no request waits on the database longer than that; a request still running at its
//! deadline is answered `DEADLINE_EXCEEDED` (and its work dropped).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use crate::request::poll_with_deadline;

/// Parses a `grpc-timeout` header value: digits then a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Bounds every request by the caller's deadline, capped by the server's request timeout
/// (or, for server-streaming methods, its stream timeout).
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    max: Duration,
    stream_max: Duration,
    streaming: std::sync::Arc<[String]>,
    service: &'static str,
}

impl DeadlineLayer {
    /// `max` applies when the caller sets no deadline or a longer one, `stream_max` in its
    /// place for the `streaming` paths; `service` labels the metric of callers' deadlines.
    pub fn new(
        max: Duration,
        stream_max: Duration,
        streaming: Vec<String>,
        service: &'static str,
    ) -> Self {
        Self {
            max,
            stream_max,
            streaming: streaming.into(),
            service,
        }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            max: self.max,
            stream_max: self.stream_max,
            streaming: self.streaming.clone(),
            asked: metrics::histogram!("grpc_server_caller_deadline_seconds", "service" => self.service),
        }
    }
}

/// The service [`DeadlineLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    max: Duration,
    stream_max: Duration,
    /// Sorted paths of the server-streaming methods (a handful).
    streaming: std::sync::Arc<[String]>,
    /// The deadlines callers arrive with (calls without one are not counted): shows
    /// whether upstream services pass theirs on.
    asked: metrics::Histogram,
}

/// At most this much of a caller's deadline is kept for the answer to travel back.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

/// The gRPC deadline header, parsed once.
static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

impl<S, B, RB> Service<http::Request<B>> for DeadlineService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Deadlined<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let asked = request
            .headers()
            .get(&GRPC_TIMEOUT)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        if let Some(asked) = asked {
            self.asked.record(asked.as_secs_f64());
        }
        // Answer a little before the caller gives up, so it hears why (tonic's own
        // handling of grpc-timeout, outside these layers, would answer CANCELLED).
        let max = if !self.streaming.is_empty()
            && self
                .streaming
                .binary_search_by(|path| path.as_str().cmp(request.uri().path()))
                .is_ok()
        {
            self.stream_max
        } else {
            self.max
        };
        let timeout = asked.map_or(max, |asked| {
            (asked - (asked / 20).min(ANSWER_MARGIN)).min(max)
        });
        let deadline = Instant::now() + timeout;
        Deadlined {
            inner: self.inner.call(request),
            deadline,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's future run inside its deadline scope, answered `DEADLINE_EXCEEDED` if
    /// still running at the deadline. The timer is only made when the request first
    /// waits, so requests answered at once never touch the timer wheel.
    pub struct Deadlined<F> {
        #[pin]
        inner: F,
        deadline: Instant,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl<F, RB, E> Future for Deadlined<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
    RB: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let deadline = *this.deadline;
        let inner = this.inner;
        if let Poll::Ready(output) = poll_with_deadline(deadline, || inner.poll(cx)) {
            return Poll::Ready(output);
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        let timer = this.timer.as_pin_mut().expect("timer was just set");
        match timer.poll(cx) {
            Poll::Ready(()) => {
                metrics::counter!("grpc_server_deadline_exceeded_total").increment(1);
                Poll::Ready(Ok(
                    tonic::Status::deadline_exceeded("deadline exceeded").into_http()
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_grpc_timeout_unit() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout("x5S"), None);
        assert_eq!(parse_grpc_timeout("5X"), None);
    }
}

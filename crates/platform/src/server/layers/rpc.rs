//! One span and one set of metrics per RPC, and a warning for each slow or failed one.
//!
//! Metric labels come only from a closed set: the methods of the services the server
//! registered (read from their descriptors) and the gRPC codes. Any other path, such as
//! random paths from anonymous clients, counts as `unknown`, so `/metrics` cannot grow
//! without bound. A call is counted when it starts (`grpc_server_started_total`) and when
//! it ends, or is dropped unfinished (the client went away or a timeout fired): then its
//! code is `Canceled`. Codes are spelled as go-grpc-prometheus spells them (`OK`, …).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry_http::HeaderExtractor;
use prost::Message;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The label of every method outside the known set.
const UNKNOWN: &str = "unknown";

/// Metric handles of one method, registered once.
#[derive(Debug)]
struct MethodMetrics {
    service: &'static str,
    method: &'static str,
    duration: metrics::Histogram,
    in_flight: metrics::Gauge,
    started: metrics::Counter,
    ok: metrics::Counter,
}

impl MethodMetrics {
    fn new(service: &'static str, method: &'static str) -> Self {
        Self {
            duration: metrics::histogram!("grpc_server_handling_seconds", "grpc_service" => service, "grpc_method" => method),
            in_flight: metrics::gauge!("grpc_server_in_flight", "grpc_service" => service, "grpc_method" => method),
            started: metrics::counter!("grpc_server_started_total", "grpc_service" => service, "grpc_method" => method),
            ok: metrics::counter!("grpc_server_handled_total", "grpc_service" => service, "grpc_method" => method, "grpc_code" => "OK"),
            service,
            method,
        }
    }

    fn handled(&self, code: tonic::Code, elapsed: Duration) {
        if code == tonic::Code::Ok {
            self.ok.increment(1);
        } else {
            metrics::counter!("grpc_server_handled_total", "grpc_service" => self.service, "grpc_method" => self.method, "grpc_code" => crate::error::code_label(code)).increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// The known methods by path (`/pkg.Service/Method`), and the one entry for the rest.
#[derive(Debug)]
struct Methods {
    known: foldhash::HashMap<&'static str, MethodMetrics>,
    unknown: MethodMetrics,
}

impl Methods {
    fn of(&'static self, path: &str) -> &'static MethodMetrics {
        self.known.get(path).unwrap_or(&self.unknown)
    }
}

/// The methods of `services` described in `descriptor_sets`, as `/pkg.Service/Method`.
/// Leaked once per server: a bounded set of names that lives as long as the process.
pub(crate) fn known_methods(
    descriptor_sets: &[&[u8]],
    services: &[&str],
) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut methods = Vec::new();
    for set in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            continue;
        };
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                let full = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                if !services.contains(&full.as_str()) {
                    continue;
                }
                let full: &'static str = Box::leak(full.into_boxed_str());
                for method in &service.method {
                    let path = Box::leak(format!("/{full}/{}", method.name()).into_boxed_str());
                    let name = &path[full.len() + 2..];
                    methods.push((&*path, full, name));
                }
            }
        }
    }
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The paths of the server-streaming methods among `services` in `descriptor_sets`.
pub(crate) fn streaming_methods(descriptor_sets: &[&[u8]], services: &[&str]) -> Vec<String> {
    let mut paths = Vec::new();
    for set in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            continue;
        };
        for file in &set.file {
            for service in &file.service {
                let full = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                if !services.contains(&full.as_str()) {
                    continue;
                }
                for method in service.method.iter().filter(|m| m.server_streaming()) {
                    paths.push(format!("/{full}/{}", method.name()));
                }
            }
        }
    }
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// One span and one set of metrics per RPC; a warning for each slow one.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    /// Leaked once per server: a bounded table that lives as long as the server, read on
    /// every call without reference counting.
    methods: &'static Methods,
    slow: Duration,
}

impl RpcLayer {
    /// `methods` are the known `(path, service, method)`s; requests slower than `slow` are
    /// logged as warnings.
    pub(crate) fn new(
        methods: &[(&'static str, &'static str, &'static str)],
        slow: Duration,
    ) -> Self {
        let known = methods
            .iter()
            .map(|&(path, service, method)| (path, MethodMetrics::new(service, method)))
            .collect();
        Self {
            methods: Box::leak(Box::new(Methods {
                known,
                unknown: MethodMetrics::new(UNKNOWN, UNKNOWN),
            })),
            slow,
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            methods: self.methods,
            slow: self.slow,
        }
    }
}

/// The service [`RpcLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    methods: &'static Methods,
    slow: Duration,
}

/// A call in flight: recorded once, when it ends, or as `Cancelled` when dropped first.
struct CallRecord {
    metrics: &'static MethodMetrics,
    started: Instant,
    finished: bool,
}

impl CallRecord {
    fn start(metrics: &'static MethodMetrics) -> Self {
        metrics.in_flight.increment(1.0);
        metrics.started.increment(1);
        Self {
            metrics,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records the call's outcome; returns how long it took.
    fn finish(&mut self, code: tonic::Code) -> Duration {
        let elapsed = self.started.elapsed();
        self.metrics.in_flight.decrement(1.0);
        self.metrics.handled(code, elapsed);
        self.finished = true;
        elapsed
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(tonic::Code::Cancelled);
        }
    }
}

impl<S, B, RB> Service<http::Request<B>> for RpcService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let metrics = self.methods.of(request.uri().path());
        let record = CallRecord::start(metrics);
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{}/{}", metrics.service, metrics.method),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = metrics.service,
            rpc.method = metrics.method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if !span.is_disabled() {
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&HeaderExtractor(request.headers()))
            });
            let _ = span.set_parent(parent);
            // Log lines inside the call (the slow-call warning too) carry its trace id.
            let trace_id = {
                use opentelemetry::trace::TraceContextExt;
                span.context().span().span_context().trace_id()
            };
            if trace_id != opentelemetry::trace::TraceId::INVALID {
                span.record("trace_id", tracing::field::display(trace_id));
            }
        }
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        RpcFuture {
            inner,
            record,
            span,
            slow: self.slow,
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's future inside its span; records the call when it ends (a named future,
    /// not a boxed one: no allocation per call).
    pub struct RpcFuture<F> {
        #[pin]
        inner: F,
        record: CallRecord,
        span: tracing::Span,
        slow: Duration,
    }
}

/// The gRPC status header, parsed once.
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

impl<F, RB, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let Poll::Ready(result) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        // Errors come as trailers-only responses, with grpc-status in the headers;
        // successful responses carry it in trailers, after this layer sees them.
        let code = match &result {
            Ok(response) => response
                .headers()
                .get(&GRPC_STATUS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32),
            Err(_) => tonic::Code::Unknown,
        };
        this.span.record("rpc.grpc.status_code", code as i32);
        // The conventions mark a server span failed for the codes that are the server's
        // fault, not the caller's.
        if matches!(
            code,
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        ) {
            this.span.record("otel.status_code", "ERROR");
        }
        let elapsed = this.record.finish(code);
        if matches!(code, tonic::Code::Internal | tonic::Code::Unavailable) {
            tracing::warn!(grpc_code = ?code, "rpc failed");
        } else if elapsed > *this.slow {
            tracing::warn!(grpc_code = ?code, elapsed_ms = elapsed.as_millis() as u64, "slow rpc");
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_methods_are_the_server_streaming_ones() {
        let paths = streaming_methods(
            &[tonic_health::pb::FILE_DESCRIPTOR_SET],
            &["grpc.health.v1.Health"],
        );
        assert_eq!(paths, vec!["/grpc.health.v1.Health/Watch".to_owned()]);
    }

    #[test]
    fn known_methods_come_from_the_registered_services_descriptors() {
        let methods = known_methods(
            &[tonic_health::pb::FILE_DESCRIPTOR_SET],
            &["grpc.health.v1.Health"],
        );
        let paths: Vec<&str> = methods.iter().map(|m| m.0).collect();
        assert!(paths.contains(&"/grpc.health.v1.Health/Check"), "{paths:?}");
        assert!(methods.contains(&(
            "/grpc.health.v1.Health/Check",
            "grpc.health.v1.Health",
            "Check"
        )));

        let none = known_methods(&[tonic_health::pb::FILE_DESCRIPTOR_SET], &["other.Service"]);
        assert!(none.is_empty());
    }

    #[test]
    fn unknown_paths_share_one_entry() {
        let layer = RpcLayer::new(&[("/a.B/C", "a.B", "C")], Duration::from_secs(1));
        assert_eq!(layer.methods.of("/a.B/C").method, "C");
        assert_eq!(layer.methods.of("/a.B/Random").method, UNKNOWN);
        assert_eq!(layer.methods.of("/zzz").service, UNKNOWN);
    }
}

//! Logs, traces and RPC metrics.
//!
//! Logs go to stdout (pretty or JSON). With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are
//! exported over OTLP/gRPC (Jaeger ingests OTLP). [`RpcLayer`] opens one span per call,
//! following the OpenTelemetry RPC conventions and continuing the caller's W3C trace
//! context, and counts calls and latencies by method and status code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics::SharedString;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryArgs};
use crate::error::{Error, Result};

/// Flushes and shuts down trace export when dropped: keep it alive until exit.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace export shutdown failed: {error}");
        }
    }
}

/// Installs the global log subscriber, the W3C propagator and, if configured, OTLP export.
pub fn init(args: &TelemetryArgs, service: &'static str) -> Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&args.log_filter)
        .map_err(|e| Error::invalid("RUST_LOG", e.to_string()))?;

    // An empty endpoint (as compose files pass for "unset") means no export.
    let endpoint = args
        .otel_exporter_otlp_endpoint
        .as_deref()
        .filter(|e| !e.is_empty());
    let provider = match endpoint {
        Some(endpoint) => Some(otlp_provider(endpoint, service)?),
        None => None,
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let installed = match args.log_format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    // A second init in one process (tests) keeps the first subscriber.
    if installed.is_err() {
        tracing::debug!("log subscriber already installed");
    }
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(endpoint: &str, service: &'static str) -> Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::invalid("OTEL_EXPORTER_OTLP_ENDPOINT", e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(format!("agentic-{service}"))
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// One span and one set of metrics per RPC; a warning for each slow one.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    methods: Arc<RwLock<HashMap<String, Arc<MethodMetrics>>>>,
    slow: Duration,
}

impl RpcLayer {
    /// Requests that take longer than `slow` are logged as warnings.
    pub fn new(slow: Duration) -> Self {
        Self {
            methods: Arc::default(),
            slow,
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            methods: self.methods.clone(),
            slow: self.slow,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    methods: Arc<RwLock<HashMap<String, Arc<MethodMetrics>>>>,
    slow: Duration,
}

/// A method's metric handles, registered once instead of looked up on every call.
#[derive(Debug)]
struct MethodMetrics {
    service: SharedString,
    method: SharedString,
    duration: metrics::Histogram,
    ok: metrics::Counter,
}

impl MethodMetrics {
    fn new(service: &str, method: &str) -> Self {
        let (service, method) = (
            SharedString::from(service.to_owned()),
            SharedString::from(method.to_owned()),
        );
        Self {
            duration: metrics::histogram!("grpc_server_handling_seconds", "grpc_service" => service.clone(), "grpc_method" => method.clone()),
            ok: metrics::counter!("grpc_server_handled_total", "grpc_service" => service.clone(), "grpc_method" => method.clone(), "grpc_code" => "Ok"),
            service,
            method,
        }
    }

    fn handled(&self, code: tonic::Code) {
        if code == tonic::Code::Ok {
            self.ok.increment(1);
        } else {
            metrics::counter!("grpc_server_handled_total", "grpc_service" => self.service.clone(), "grpc_method" => self.method.clone(), "grpc_code" => format!("{code:?}")).increment(1);
        }
    }
}

impl<S> RpcService<S> {
    fn metrics_for(&self, path: &str) -> Arc<MethodMetrics> {
        if let Some(found) = self.methods.read().expect("metrics lock").get(path) {
            return found.clone();
        }
        let (service, method) = split_path(path);
        self.methods
            .write()
            .expect("metrics lock")
            .entry(path.to_owned())
            .or_insert_with(|| Arc::new(MethodMetrics::new(service, method)))
            .clone()
    }
}

impl<S, B, RB> Service<http::Request<B>> for RpcService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let (service, method) = split_path(path);
        let metrics = self.metrics_for(path);
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);

        let started = Instant::now();
        let slow = self.slow;
        let fut = self.inner.call(request);
        let record_span = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                // Errors come as trailers-only responses, with grpc-status in the headers;
                // successful responses carry it in trailers, after this layer sees them.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => tonic::Code::Unknown as i32,
                };
                record_span.record("rpc.grpc.status_code", code);
                let code = tonic::Code::from_i32(code);
                let elapsed = started.elapsed();
                metrics.handled(code);
                metrics.duration.record(elapsed.as_secs_f64());
                if matches!(code, tonic::Code::Internal | tonic::Code::Unavailable) {
                    tracing::warn!(grpc_code = ?code, "rpc failed");
                } else if elapsed > slow {
                    tracing::warn!(grpc_code = ?code, elapsed_ms = elapsed.as_millis() as u64, "slow rpc");
                }
                result
            }
            .instrument(span),
        )
    }
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(
            split_path("/agentic.user.v1.UserService/GetUser"),
            ("agentic.user.v1.UserService", "GetUser")
        );
        assert_eq!(split_path("/odd"), ("odd", ""));
    }
}

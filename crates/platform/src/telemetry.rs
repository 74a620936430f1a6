//! Logs and traces.
//!
//! Logs go to stdout (pretty or JSON). With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are
//! exported over OTLP/gRPC (Jaeger ingests OTLP). The per-call span and metrics are the
//! `rpc` module's.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

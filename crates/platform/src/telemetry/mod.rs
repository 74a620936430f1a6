//! Logs and traces.
//!
//! Logs go to stdout (pretty or JSON). With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are
//! exported over OTLP/gRPC (Jaeger ingests OTLP). The per-call span and metrics are the
//! `rpc` module's.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryArgs};
use crate::error::{Error, Result};

mod bounded;

/// Whether spans leave the process: the finer spans (statements, cache look-ups) are
/// made only then, since nothing else shows them.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports spans (`OTEL_EXPORTER_OTLP_ENDPOINT` is set).
pub(crate) fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

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
        Some(endpoint) => Some(otlp_provider(endpoint, args, service)?),
        None => None,
    };
    EXPORTING.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
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

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name.
fn sampler(args: &TelemetryArgs) -> Result<Sampler> {
    let ratio = args.otel_traces_sampler_arg;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(Error::invalid(
            "OTEL_TRACES_SAMPLER_ARG",
            "must be between 0 and 1",
        ));
    }
    let ratio = Sampler::TraceIdRatioBased(ratio);
    Ok(match args.otel_traces_sampler.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => ratio,
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(ratio)),
        other => {
            return Err(Error::invalid(
                "OTEL_TRACES_SAMPLER",
                format!("{other} is not a sampler this service knows"),
            ));
        }
    })
}

/// `key=value,key=value` as resource attributes; a pair without `=` is an error.
fn resource_attributes(text: &str) -> Result<Vec<KeyValue>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(KeyValue::new(
                key.trim().to_owned(),
                value.trim().to_owned(),
            )),
            _ => Err(Error::invalid(
                "OTEL_RESOURCE_ATTRIBUTES",
                "must be key=value pairs separated by commas",
            )),
        })
        .collect()
}

fn otlp_provider(
    endpoint: &str,
    args: &TelemetryArgs,
    service: &'static str,
) -> Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::invalid("OTEL_EXPORTER_OTLP_ENDPOINT", e.to_string()))?;
    let name = args
        .otel_service_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("agentic-{service}"));
    let attributes = resource_attributes(args.otel_resource_attributes.as_deref().unwrap_or(""))?;
    // Spans wait in a bounded queue and leave in batches from a thread of their own: a
    // dead or hung collector costs dropped spans (counted), never a slower request.
    let capacity = args.otel_bsp_max_queue_size as usize;
    let in_flight = bounded::InFlight::default();
    let batches = BatchSpanProcessor::builder(bounded::Releasing::new(exporter, in_flight.clone()))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(capacity)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(bounded::Bounded::new(batches, in_flight, capacity))
        .with_sampler(sampler(args)?)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_attributes(attributes)
                .with_service_name(name)
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

//! The admin HTTP port: Prometheus `/metrics` (with the standard `process_*` series,
//! read at each scrape), `/health/live` and `/health/ready`.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Latency buckets (seconds) for every histogram: sub-millisecond cache hits to slow calls.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// How often histograms are compacted, whether or not anyone scrapes.
const UPKEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the recorder's upkeep until `stop`: without it, histogram samples pile up in
/// memory while nobody scrapes `/metrics`.
pub async fn run_upkeep(stop: CancellationToken) {
    let handle = metrics_handle();
    let mut ticker = tokio::time::interval(UPKEEP_PERIOD);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => handle.run_upkeep(),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    ready: watch::Receiver<bool>,
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = AdminState {
        metrics: metrics_handle(),
        ready,
    };
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(readiness))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The process's own series, described once and read at each scrape.
fn process_metrics() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

async fn render_metrics(State(state): State<AdminState>) -> String {
    process_metrics().collect();
    state.metrics.render()
}

async fn readiness(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

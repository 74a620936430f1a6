//! The one gRPC server builder every service uses.
//!
//! It adds, in a fixed order: panic → `INTERNAL`, a span and metrics per RPC, the caller's
//! deadline, and bearer-token auth; plus tonic's request timeout, per-connection
//! concurrency limit and load shedding. It serves grpc.health.v1 (every status starts
//! `NOT_SERVING` and follows the database), reflection v1 and v1alpha, and the admin HTTP
//! port, and drains in-flight requests on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::{Layer, Service};

use crate::auth::AuthLayer;
use crate::config::ServerArgs;
use crate::db::Pool;
use crate::deadline::DeadlineLayer;
use crate::error::{Error, Result};
use crate::telemetry::RpcLayer;

/// A service's name and default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub grpc_port: u16,
    pub admin_port: u16,
}

pub const USER: ServiceSpec = ServiceSpec {
    name: "user",
    grpc_port: 50051,
    admin_port: 9151,
};
pub const AGENT: ServiceSpec = ServiceSpec {
    name: "agent",
    grpc_port: 50052,
    admin_port: 9152,
};
pub const CONVERSATION: ServiceSpec = ServiceSpec {
    name: "conversation",
    grpc_port: 50053,
    admin_port: 9153,
};
pub const RAG: ServiceSpec = ServiceSpec {
    name: "rag",
    grpc_port: 50054,
    admin_port: 9154,
};

impl ServiceSpec {
    pub fn grpc_addr(&self, args: &ServerArgs) -> SocketAddr {
        args.grpc_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.grpc_port)))
    }

    pub fn admin_addr(&self, args: &ServerArgs) -> SocketAddr {
        args.admin_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.admin_port)))
    }
}

/// Builds and runs one service's gRPC server.
pub struct Server {
    spec: ServiceSpec,
    args: ServerArgs,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    auth: AuthLayer,
    database: Option<Pool>,
}

impl Server {
    pub fn new(spec: ServiceSpec, args: ServerArgs, auth: AuthLayer) -> Self {
        Self {
            spec,
            args,
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            auth,
            database: None,
        }
    }

    /// Adds a generated tonic service; its health status follows readiness.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Readiness (health `SERVING`, `/health/ready` 200) follows this database.
    pub fn ready_when_database_answers(mut self, pool: Pool) -> Self {
        self.database = Some(pool);
        self
    }

    /// Serves on `listener` (and the admin routes on `admin`) until SIGTERM, SIGINT or
    /// `shutdown`; then stops accepting, lets in-flight requests finish (up to the
    /// configured grace), and returns.
    pub async fn run(
        mut self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut names = self.service_names.clone();
        names.push("");
        set_all(&health, &names, ServingStatus::NotServing).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(agentic_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| Error::internal(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(agentic_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| Error::internal(format!("reflection: {e}")))?;
        self.routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let (ready_tx, ready_rx) = watch::channel(false);
        let background = shutdown.child_token();
        tokio::spawn(follow_readiness(
            self.database.clone(),
            health.clone(),
            names.clone(),
            ready_tx,
            self.args.readiness_interval,
            background.clone(),
        ));
        if let Some(pool) = &self.database {
            pool.spawn_status_reporter(std::time::Duration::from_secs(5));
        }
        if let Some(admin) = admin {
            let (ready, token) = (ready_rx.clone(), background.clone());
            tokio::spawn(async move {
                if let Err(error) = crate::admin::serve(admin, ready, token).await {
                    tracing::error!(%error, "admin server failed");
                }
            });
        }

        let local = listener.local_addr().ok();
        tracing::info!(service = self.spec.name, addr = ?local, "serving grpc");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let layers = tower::ServiceBuilder::new()
            .layer(CatchPanicLayer)
            .layer(RpcLayer::new(self.args.slow_request_threshold))
            .layer(DeadlineLayer::new(self.args.request_timeout))
            .layer(self.auth.clone());

        let signalled = CancellationToken::new();
        let drain = {
            let (signalled, shutdown, health) =
                (signalled.clone(), shutdown.clone(), health.clone());
            async move {
                wait_for_signal(&shutdown).await;
                tracing::info!("shutting down: draining in-flight requests");
                set_all(&health, &names, ServingStatus::NotServing).await;
                signalled.cancel();
            }
        };
        let serve = tonic::transport::Server::builder()
            .timeout(self.args.request_timeout)
            .concurrency_limit_per_connection(self.args.concurrency_limit_per_connection)
            .load_shed(true)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .layer(layers)
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(incoming, drain);

        let grace = self.args.shutdown_grace;
        let outcome = tokio::select! {
            served = serve => served.map_err(|e| Error::internal(format!("grpc server: {e}"))),
            () = async { signalled.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight requests outlived the shutdown grace");
                Ok(())
            }
        };
        background.cancel();
        tracing::info!(service = self.spec.name, "stopped");
        outcome
    }
}

async fn set_all(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Flips health and `/health/ready` whenever the database starts or stops answering.
async fn follow_readiness(
    database: Option<Pool>,
    health: HealthReporter,
    names: Vec<&'static str>,
    ready: watch::Sender<bool>,
    interval: std::time::Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now_ready = match &database {
            Some(pool) => pool.ping().await,
            None => true,
        };
        if stop.is_cancelled() {
            return;
        }
        if *ready.borrow() != now_ready {
            let status = if now_ready {
                tracing::info!("database answers: ready");
                ServingStatus::Serving
            } else {
                tracing::warn!("database does not answer: not ready");
                ServingStatus::NotServing
            };
            set_all(&health, &names, status).await;
            ready.send_replace(now_ready);
        }
    }
}

/// Resolves on SIGTERM, SIGINT or `shutdown`.
async fn wait_for_signal(shutdown: &CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
        () = shutdown.cancelled() => {}
    }
}

/// Turns a panicking handler into an `INTERNAL` status instead of a reset stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for CatchPanic<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(fut) => fut,
            Err(_) => return Box::pin(async move { Ok(panic_response(&path)) }),
        };
        Box::pin(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Ok(panic_response(&path)),
            }
        })
    }
}

fn panic_response<RB: Default>(path: &str) -> http::Response<RB> {
    tracing::error!(rpc = path, "handler panicked");
    metrics::counter!("grpc_server_panics_total").increment(1);
    tonic::Status::internal("internal error").into_http()
}

/// Binds a service's gRPC and admin listeners at their configured or default addresses.
pub async fn bind(spec: ServiceSpec, args: &ServerArgs) -> Result<(TcpListener, TcpListener)> {
    let grpc_addr = spec.grpc_addr(args);
    let admin_addr = spec.admin_addr(args);
    let grpc = TcpListener::bind(grpc_addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {grpc_addr}: {e}")))?;
    let admin = TcpListener::bind(admin_addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {admin_addr}: {e}")))?;
    tracing::info!(service = spec.name, grpc = %grpc_addr, admin = %admin_addr, "listening");
    Ok((grpc, admin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn request() -> http::Request<()> {
        http::Request::builder()
            .uri("/agentic.test.v1.Test/Boom")
            .body(())
            .expect("request")
    }

    fn code_of(response: &http::Response<Body>) -> tonic::Code {
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
}

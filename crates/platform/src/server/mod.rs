//! The one gRPC server builder every service uses.
//!
//! It adds, in a fixed order: panic → `INTERNAL`, a span and metrics per RPC, the request
//! size limit, the caller's deadline, the read consistency it asked for, bearer-token
//! auth, rate limits and the principal check (the deadline layer is the request timeout); and it caps concurrent streams per
//! connection in HTTP/2's own settings. It serves grpc.health.v1 (every status starts
//! `NOT_SERVING` and follows the database), reflection v1 and v1alpha, and the admin HTTP
//! port, and drains in-flight requests on SIGTERM/SIGINT. Responses that finish together
//! leave in one write ([`coalesce`]). The layers are in [`layers`], whose `mod.rs` lists
//! them in the order applied here.

use std::convert::Infallible;

use futures::TryStreamExt;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::Service;

pub mod admin;
pub mod coalesce;
mod framing;
pub mod layers;
pub mod readiness;

use self::coalesce::CoalescedWrites;
use self::layers::rpc::{known_methods, streaming_methods};
use self::layers::{
    AuthLayer, CatchPanicLayer, ConsistencyLayer, DeadlineLayer, MessageLimitLayer, PrincipalLayer,
    RateLimitLayer, ReadYourWritesLayer, RpcLayer,
};
use self::readiness::{HealthStatuses, follow_readiness};
use crate::config::ServerArgs;
use crate::db::Pool;
use crate::error::{Error, Result};
use crate::ratelimit::RateLimiter;

/// A generated tonic server configured as every service's must be: requests held to the
/// context's message limit (so inflated messages are, too), gzip accepted and sent.
/// Generated servers share no trait for this, hence a macro:
/// `services.add(agentic_platform::grpc_server!(UserServiceServer::new(service), context))`.
#[macro_export]
macro_rules! grpc_server {
    ($server:expr, $context:expr) => {
        $server
            .max_decoding_message_size($context.max_message_size)
            .accept_compressed(::tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(::tonic::codec::CompressionEncoding::Gzip)
    };
}

/// A connection idle this long is probed; after this many unanswered probes, this far
/// apart, it is closed (about a minute for a client that vanished).
const TCP_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// The tonic services a service registers, and their names for health.
#[derive(Default)]
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    background: Vec<BackgroundTask>,
}

/// Work a service runs beside its RPCs, given the token that tells it to stop.
type BackgroundTask =
    Box<dyn FnOnce(CancellationToken) -> futures::future::BoxFuture<'static, ()> + Send>;

impl Services {
    /// Adds a generated tonic service; its health status follows readiness.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Runs `task` while the server runs (queue workers and the like). Its token is
    /// cancelled once in-flight requests have drained, so requests that wait on the task
    /// still finish; the server then waits for it, up to the shutdown grace.
    pub fn background<F, Fut>(&mut self, task: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background
            .push(Box::new(move |token| Box::pin(task(token))));
        self
    }
}

/// Builds and runs one service's gRPC server.
pub struct Server {
    /// The service's short name, for logs and metrics.
    name: &'static str,
    args: ServerArgs,
    services: Services,
    auth: AuthLayer,
    principals: PrincipalLayer,
    limiter: Option<RateLimiter>,
    descriptors: Vec<&'static [u8]>,
    database: Option<Pool>,
}

impl Server {
    /// A server for the service `name` (which labels its logs and metrics).
    pub fn new(name: &'static str, args: ServerArgs, auth: AuthLayer, services: Services) -> Self {
        Self {
            name,
            args,
            services,
            auth,
            principals: PrincipalLayer::default(),
            limiter: None,
            descriptors: Vec::new(),
            database: None,
        }
    }

    /// Calls are refused unless their principal passes `principals` (after auth).
    pub fn check_principals(mut self, principals: PrincipalLayer) -> Self {
        self.principals = principals;
        self
    }

    /// Calls are limited by `limiter` (after auth); `None` limits nothing.
    pub fn limit_rates(mut self, limiter: Option<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Reflection describes the services with this encoded file descriptor set.
    pub fn describe(mut self, file_descriptor_set: &'static [u8]) -> Self {
        self.descriptors.push(file_descriptor_set);
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
        let mut names = self.services.names.clone();
        names.push("");
        let health = HealthStatuses::new(&names, ServingStatus::NotServing);
        let health_service = health.service();

        // Each version lists itself; both answer, so each lists the other too.
        let reflection_v1 = self
            .reflection()
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .build_v1()
            .map_err(|e| Error::internal(format!("reflection: {e}")))?;
        let reflection_v1alpha = self
            .reflection()
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| Error::internal(format!("reflection: {e}")))?;
        self.services
            .routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let (ready_tx, ready_rx) = watch::channel(false);
        let background = shutdown.child_token();
        tokio::spawn(follow_readiness(
            self.name,
            self.database.clone(),
            health.clone(),
            ready_tx,
            self.args.readiness_interval,
            self.args.readiness_timeout,
            background.clone(),
        ));
        if let Some(pool) = &self.database {
            pool.spawn_status_reporter(std::time::Duration::from_secs(5));
        }
        tokio::spawn(admin::run_upkeep(background.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        for task in std::mem::take(&mut self.services.background) {
            tasks.spawn(task(background.clone()));
        }
        if let Some(admin) = admin {
            let (ready, token) = (ready_rx.clone(), background.clone());
            tokio::spawn(async move {
                if let Err(error) = admin::serve(admin, ready, token).await {
                    tracing::error!(%error, "admin server failed");
                }
            });
        }

        let local = listener.local_addr().ok();
        tracing::info!(service = self.name, addr = ?local, "serving grpc");
        // Dead clients are found by TCP keep-alive, in the kernel. HTTP/2 keep-alive would
        // do the same from user space at the price of a clock read and a lock on every
        // frame received (hyper's ping recorder); the platform's own clients ping anyway.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE_IDLE))
            .with_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL))
            .with_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES))
            .map_ok(CoalescedWrites::new);
        let mut descriptors = self.descriptors.clone();
        descriptors.extend([
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]);
        let mut served = self.services.names.clone();
        served.extend([
            tonic_health::pb::health_server::SERVICE_NAME,
            tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
            tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        ]);
        let methods = known_methods(&descriptors, &served);
        let streaming = streaming_methods(&descriptors, &served);
        if let Some(limiter) = &self.limiter {
            limiter.bind(&methods);
            tokio::spawn(limiter.clone().run_upkeep(background.clone()));
        }
        let layers = tower::ServiceBuilder::new()
            .layer(CatchPanicLayer)
            .layer(RpcLayer::new(&methods, self.args.slow_request_threshold))
            .layer(MessageLimitLayer::new(self.args.grpc_max_message_size))
            .layer(DeadlineLayer::new(
                self.args.request_timeout,
                self.args.stream_timeout,
                streaming,
                self.name,
            ))
            .layer(ConsistencyLayer)
            .layer(ReadYourWritesLayer::new(
                self.database.as_ref().is_some_and(Pool::has_replicas),
            ))
            .layer(self.auth.clone())
            .layer(RateLimitLayer::new(self.limiter.clone()))
            .layer(self.principals.clone());

        let signalled = CancellationToken::new();
        let drain = {
            let (signalled, shutdown, health) =
                (signalled.clone(), shutdown.clone(), health.clone());
            async move {
                wait_for_signal(&shutdown).await;
                tracing::info!("shutting down: draining in-flight requests");
                health.set_all(ServingStatus::NotServing);
                signalled.cancel();
            }
        };
        let serve = tonic::transport::Server::builder()
            // HTTP/2 enforces the per-connection limit itself: clients are told it and
            // queue for a free stream. (A tower concurrency limit would do the same work
            // again with a semaphore and an allocation on every call.)
            .max_concurrent_streams(
                u32::try_from(self.args.concurrency_limit_per_connection).unwrap_or(u32::MAX),
            )
            .layer(layers)
            .add_routes(self.services.routes.routes())
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
        let finished =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} });
        if finished.await.is_err() {
            tracing::warn!(?grace, "background work outlived the shutdown grace");
        }
        tracing::info!(service = self.name, "stopped");
        outcome
    }
}

impl Server {
    /// Reflection over the service's descriptors and the health service's, listing only
    /// what this server serves (the descriptor set holds every service of the suite).
    fn reflection(&self) -> tonic_reflection::server::Builder<'static> {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let builder = self.descriptors.iter().fold(builder, |builder, set| {
            builder.register_encoded_file_descriptor_set(set)
        });
        self.services
            .names
            .iter()
            .copied()
            .chain([
                tonic_health::pb::health_server::SERVICE_NAME,
                tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
                tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
            ])
            .fold(builder, |builder, name| builder.with_service_name(name))
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

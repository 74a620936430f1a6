//! Any [`ServiceType`] in-process on `127.0.0.1:0`, called over real gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use super::TestDatabase;
use crate::auth::{Tokens, roles};
pub use crate::client::Bearer;
use crate::config::{AuthArgs, CacheArgs, DatabaseArgs, LogFormat, ServerArgs, TelemetryArgs};
use crate::db::Pool;
use crate::service::{App, ServiceArgs, ServiceType};

/// The secret every service under test signs and verifies tokens with.
pub const JWT_SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";

/// The token settings every service under test shares.
pub fn auth_args() -> AuthArgs {
    AuthArgs {
        jwt_secret: JWT_SECRET.into(),
        jwt_issuer: "agentic".into(),
        jwt_ttl: 3600,
    }
}

/// A channel that adds `authorization: Bearer <token>` to every call.
pub type BearerChannel = InterceptedService<Channel, Bearer>;

/// Creates the tenant `slug` through the user service on `channel` (with a platform
/// token) and returns its id: every service's tests act inside a tenant.
pub async fn create_tenant(channel: Channel, tokens: &Tokens, slug: &str) -> Uuid {
    use agentic_proto::user::v1 as pb;
    use agentic_proto::user::v1::user_service_client::UserServiceClient;
    let (platform, _) = tokens
        .issue("e2e", None, roles::PLATFORM, None)
        .expect("token");
    let tenant = UserServiceClient::new(InterceptedService::new(
        channel,
        Bearer::new(Some(&platform)),
    ))
    .create_tenant(pb::CreateTenantRequest {
        name: format!("Tenant {slug}"),
        slug: slug.to_owned(),
        request_id: String::new(),
    })
    .await
    .expect("create tenant")
    .into_inner()
    .tenant
    .expect("tenant");
    tenant.id.parse().expect("uuid")
}

/// A free loopback address to listen on.
pub async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A channel to the server at `addr`.
pub async fn grpc_channel(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
}

/// The grpc.health.v1 status of `service` ("" for the whole server) at `addr`.
pub async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = grpc_channel(addr).await.ok()?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?
        .into_inner()
        .status;
    ServingStatus::try_from(status).ok()
}

/// Waits (up to 10 s) for the server at `addr` to report `wanted` overall.
pub async fn wait_for_health(addr: SocketAddr, wanted: ServingStatus) {
    if !reports_health_within(addr, wanted, Duration::from_secs(10)).await {
        panic!("the server at {addr} never reported {wanted:?}");
    }
}

/// Whether the server at `addr` reports `wanted` overall within `limit`.
pub(crate) async fn reports_health_within(
    addr: SocketAddr,
    wanted: ServingStatus,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if health(addr, "").await == Some(wanted) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// GET `path` on an admin port: the HTTP status code and the whole response.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    (status, response)
}

/// How to start a service under test.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether the cache is on (`CACHE_ENABLED`).
    pub cache_enabled: bool,
    /// Redis for the cache; the shared test Redis by default.
    pub redis_url: Option<String>,
    /// Connect through this URL instead of the test database's own (e.g. via a proxy).
    pub database_url: Option<String>,
    /// How long cached values stay fresh (`CACHE_DEFAULT_TTL`).
    pub cache_ttl: Duration,
    /// Database connections (`DB_POOL_SIZE`, and as many overflow).
    pub pool_size: u32,
    /// Whether calls' principals are checked (`PRINCIPAL_CHECK`); off by default, since
    /// most tests act in tenants only a token names.
    pub principal_check: bool,
    /// Rate limits (`RATE_LIMIT_*`); off by default (`RATE_LIMIT_ENABLED=false`), since
    /// most tests call faster than the default limits allow.
    pub rate_limits: crate::ratelimit::RateLimitArgs,
    /// The service's own settings, as flags (`--user-service-url`, ...): parsed by clap
    /// into its [`ServiceType::Args`] after its [`ServiceType::TEST_FLAGS`].
    pub service_flags: Vec<String>,
    /// Streaming replicas of its database (`DATABASE_REPLICA_URL`), polled every 20 ms
    /// and never quarantined for lag within a test.
    pub replica_urls: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_enabled: true,
            redis_url: super::redis_url(),
            database_url: None,
            cache_ttl: Duration::from_secs(300),
            pool_size: 4,
            principal_check: false,
            rate_limits: crate::config::from_flags(&["--rate-limit-enabled", "false"]),
            service_flags: Vec::new(),
            replica_urls: Vec::new(),
        }
    }
}

impl Options {
    /// The settings a service under test runs with: quick readiness and drain, quiet logs.
    pub fn service_args(&self, database_url: &str, cache_prefix: &str) -> ServiceArgs {
        let mut cache = CacheArgs::with_redis(self.redis_url.clone());
        cache.cache_enabled = self.cache_enabled;
        cache.cache_key_prefix = cache_prefix.to_owned();
        cache.cache_default_ttl = self.cache_ttl.as_secs().max(1);
        let mut database = DatabaseArgs::with_url(database_url);
        database.db_pool_size = self.pool_size;
        database.db_max_overflow = self.pool_size;
        database.db_pool_timeout = 5;
        database.database_replica_url = self.replica_urls.clone();
        database.db_replica_poll_interval = Duration::from_millis(20);
        database.db_replica_max_lag = Duration::from_secs(600);
        ServiceArgs {
            database,
            cache,
            auth: auth_args(),
            server: ServerArgs {
                readiness_interval: Duration::from_millis(100),
                shutdown_grace: Duration::from_secs(10),
                ..ServerArgs::default()
            },
            telemetry: TelemetryArgs {
                log_format: LogFormat::Pretty,
                log_filter: "warn".into(),
                otel_exporter_otlp_endpoint: None,
                ..crate::config::from_flags(&[])
            },
            principals: crate::principal::PrincipalArgs {
                principal_check: self.principal_check,
                ..crate::config::from_flags(&[])
            },
            rate_limits: self.rate_limits.clone(),
            migrate_on_start: false,
        }
    }

    /// `S`'s own settings under test: its [`ServiceType::TEST_FLAGS`], then
    /// [`Options::service_flags`] (a later flag wins), parsed by clap without reading the
    /// environment.
    pub fn own_args<S: ServiceType>(&self) -> S::Args {
        let mut flags: Vec<&str> = S::TEST_FLAGS.to_vec();
        flags.extend(self.service_flags.iter().map(String::as_str));
        crate::config::from_flags(&flags)
    }
}

/// A running service of type `S` and handles to what it holds.
pub struct TestService<S> {
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its admin HTTP address.
    pub admin_addr: SocketAddr,
    /// Its database pool (for query counts).
    pub pool: Pool,
    /// Tokens it accepts.
    pub tokens: Tokens,
    shutdown: CancellationToken,
    task: Option<JoinHandle<crate::Result<()>>>,
    service: std::marker::PhantomData<fn() -> S>,
}

impl<S: ServiceType> TestService<S> {
    /// Starts a service on `database_url` and waits until it reports `SERVING`.
    pub async fn start_on(database_url: &str, cache_prefix: &str, options: &Options) -> Self {
        let service = Self::start_unready(database_url, cache_prefix, options).await;
        service.wait_for(ServingStatus::Serving).await;
        service
    }

    /// Starts a service without waiting for readiness.
    pub async fn start_unready(database_url: &str, cache_prefix: &str, options: &Options) -> Self {
        Self::start_with_args(
            options.service_args(database_url, cache_prefix),
            options.own_args::<S>(),
        )
        .await
    }

    /// Starts a service with settings of the test's own making.
    pub async fn start_with_args(args: ServiceArgs, own: S::Args) -> Self {
        let app = App::<S>::new(&args, own).expect("valid test settings");
        let pool = app.context().pool.clone();
        // A fixed address when the test asks for one (to restart a service in place).
        let grpc_addr = args
            .server
            .grpc_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(grpc_addr).await.expect("bind grpc");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.serve(listener, Some(admin), shutdown.clone()));
        Self {
            addr,
            admin_addr,
            pool,
            tokens: Tokens::new(&args.auth).expect("test secret"),
            shutdown,
            task: Some(task),
            service: std::marker::PhantomData,
        }
    }

    /// A plain channel to it.
    pub async fn channel(&self) -> Channel {
        grpc_channel(self.addr)
            .await
            .expect("connect to service under test")
    }

    /// A channel that sends `token` (none when `None`) with every call; wrap it in the
    /// service's generated client.
    pub async fn bearer_channel(&self, token: Option<&str>) -> BearerChannel {
        InterceptedService::new(self.channel().await, Bearer::new(token))
    }

    /// A token acting in `tenant` with `role`.
    pub fn token(&self, tenant: Uuid, role: &str) -> String {
        self.tokens
            .issue("e2e", Some(tenant), role, None)
            .expect("token")
            .0
    }

    /// A token of the user `user` (its id), acting in `tenant` with `role`.
    pub fn user_token(&self, user: &str, tenant: Uuid, role: &str) -> String {
        self.tokens
            .issue(user, Some(tenant), role, None)
            .expect("token")
            .0
    }

    /// A platform token.
    pub fn platform_token(&self) -> String {
        self.tokens
            .issue("e2e", None, roles::PLATFORM, None)
            .expect("token")
            .0
    }

    /// Application queries this service has sent to PostgreSQL so far.
    pub fn queries(&self) -> u64 {
        self.pool.queries()
    }

    /// The grpc.health.v1 status of `service` ("" for the whole server).
    pub async fn health(&self, service: &str) -> ServingStatus {
        health(self.addr, service).await.expect("health check")
    }

    /// Waits (up to 10 s) for the overall health status to become `wanted`.
    pub async fn wait_for(&self, wanted: ServingStatus) {
        wait_for_health(self.addr, wanted).await;
    }

    /// GET `path` on the admin port: the HTTP status code and the whole response.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        admin_get(self.admin_addr, path).await
    }

    /// The services reflection v1 lists.
    pub async fn reflected_services(&self) -> Vec<String> {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let list = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new(self.channel().await)
            .server_reflection_info(tokio_stream::once(list))
            .await
            .expect("reflection v1")
            .into_inner();
        let reply = replies.message().await.expect("reply").expect("one reply");
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(services)) => {
                services.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("expected a service list, got {other:?}"),
        }
    }

    /// Stops the service and waits for in-flight requests to drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl<S> Drop for TestService<S> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A test's own database and a service of type `S` on it.
pub struct Harness<S> {
    /// The test's own database.
    pub db: TestDatabase,
    /// The service on it.
    pub service: TestService<S>,
}

impl<S: ServiceType> Harness<S> {
    /// A fresh database and the service on it, with the default options.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A fresh database and the service on it, with `options`.
    pub async fn start_with(options: Options) -> Self {
        let db = TestDatabase::create(S::SPEC.name, S::MIGRATIONS).await;
        let url = options
            .database_url
            .clone()
            .unwrap_or_else(|| db.url.clone());
        let service = TestService::start_on(&url, &db.name, &options).await;
        Self { db, service }
    }
}

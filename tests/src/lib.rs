//! Fixtures for the end-to-end tests: the user service in-process on `127.0.0.1:0`,
//! against a fresh PostgreSQL database and the shared (or a private) Redis, called over
//! real gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::{AuthArgs, CacheArgs, DatabaseArgs, ServerArgs, TelemetryArgs};
use agentic_platform::db::Pool;
use agentic_platform::testsuite::{self, TestDatabase};
use agentic_proto::user::v1 as pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use agentic_user::{UserApp, UserArgs};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use uuid::Uuid;

pub use agentic_user::MIGRATIONS;

pub const JWT_SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";

pub type UserClient = UserServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// How to start a service under test.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache_enabled: bool,
    /// Redis for the cache; the shared test Redis by default.
    pub redis_url: Option<String>,
    /// Connect through this URL instead of the test database's own (e.g. via a proxy).
    pub database_url: Option<String>,
    pub cache_ttl: Duration,
    pub pool_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_enabled: true,
            redis_url: testsuite::redis_url(),
            database_url: None,
            cache_ttl: Duration::from_secs(300),
            pool_size: 4,
        }
    }
}

pub fn auth_args() -> AuthArgs {
    AuthArgs {
        jwt_secret: JWT_SECRET.into(),
        jwt_issuer: "agentic".into(),
        jwt_ttl: 3600,
    }
}

/// The settings a service under test runs with.
pub fn user_args(database_url: &str, cache_prefix: &str, options: &Options) -> UserArgs {
    let mut cache = CacheArgs::with_redis(options.redis_url.clone());
    cache.cache_enabled = options.cache_enabled;
    cache.cache_key_prefix = cache_prefix.to_owned();
    cache.cache_default_ttl = options.cache_ttl.as_secs().max(1);
    let mut database = DatabaseArgs::with_url(database_url);
    database.db_pool_size = options.pool_size;
    database.db_max_overflow = options.pool_size;
    database.db_pool_timeout = 5;
    UserArgs {
        database,
        cache,
        auth: auth_args(),
        server: ServerArgs {
            readiness_interval: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(10),
            ..ServerArgs::default()
        },
        telemetry: TelemetryArgs {
            log_format: agentic_platform::config::LogFormat::Pretty,
            log_filter: "warn".into(),
            otel_exporter_otlp_endpoint: None,
        },
        migrate_on_start: false,
    }
}

/// A running user service and the database it owns.
pub struct UserService {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub pool: Pool,
    pub tokens: Tokens,
    shutdown: CancellationToken,
    task: Option<JoinHandle<agentic_platform::Result<()>>>,
}

impl UserService {
    /// Starts a service on `database_url` and waits until it reports `SERVING`.
    pub async fn start_on(database_url: &str, cache_prefix: &str, options: &Options) -> Self {
        let service = Self::start_unready(database_url, cache_prefix, options).await;
        service.wait_for(ServingStatus::Serving).await;
        service
    }

    /// Starts a service without waiting for readiness.
    pub async fn start_unready(database_url: &str, cache_prefix: &str, options: &Options) -> Self {
        let args = user_args(database_url, cache_prefix, options);
        let app = UserApp::new(&args).expect("valid test settings");
        let pool = app.pool.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.serve(listener, Some(admin), shutdown.clone()));
        Self {
            addr,
            admin_addr,
            pool,
            tokens: Tokens::new(&auth_args()).expect("test secret"),
            shutdown,
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to service under test")
    }

    pub async fn client(&self, token: Option<&str>) -> UserClient {
        let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")));
        UserServiceClient::with_interceptor(self.channel().await, bearer)
    }

    pub fn token(&self, tenant: Uuid, role: &str) -> String {
        self.tokens
            .issue("e2e", Some(tenant), role, None)
            .expect("token")
            .0
    }

    pub fn platform_token(&self) -> String {
        self.tokens
            .issue("e2e", None, roles::PLATFORM, None)
            .expect("token")
            .0
    }

    /// Creates a tenant and returns its id with an admin client for it.
    pub async fn tenant(&self, slug: &str) -> (Uuid, UserClient) {
        let mut platform = self.client(Some(&self.platform_token())).await;
        let tenant = platform
            .create_tenant(pb::CreateTenantRequest {
                name: format!("Tenant {slug}"),
                slug: slug.to_owned(),
            })
            .await
            .expect("create tenant")
            .into_inner()
            .tenant
            .expect("tenant");
        let id: Uuid = tenant.id.parse().expect("uuid");
        let admin = self.client(Some(&self.token(id, roles::ADMIN))).await;
        (id, admin)
    }

    /// Application queries this service has sent to PostgreSQL so far.
    pub fn queries(&self) -> u64 {
        self.pool.queries()
    }

    pub async fn health(&self, service: &str) -> ServingStatus {
        let mut health = HealthClient::new(self.channel().await);
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        ServingStatus::try_from(status).expect("known status")
    }

    /// Waits (up to 10 s) for the overall health status to become `wanted`.
    pub async fn wait_for(&self, wanted: ServingStatus) {
        for _ in 0..200 {
            if self.health("").await == wanted {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("service never reported {wanted:?}");
    }

    /// Stops the service and waits for it to drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for UserService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A test's own database and a service on it.
pub struct Harness {
    pub db: TestDatabase,
    pub service: UserService,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let db = TestDatabase::create("user", MIGRATIONS).await;
        let url = options
            .database_url
            .clone()
            .unwrap_or_else(|| db.url.clone());
        let service = UserService::start_on(&url, &db.name, &options).await;
        Self { db, service }
    }
}

/// A create request for `email` with a display name.
pub fn new_user(email: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        email: email.to_owned(),
        display_name: format!("User {email}"),
        ..Default::default()
    }
}

/// An update of `id`'s display name alone.
pub fn rename(id: &str, display_name: impl Into<String>) -> pb::UpdateUserRequest {
    pb::UpdateUserRequest {
        user: Some(pb::User {
            id: id.to_owned(),
            display_name: display_name.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    }
}

/// The field names of a status's `google.rpc.BadRequest` details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A short unique slug for a tenant.
pub fn slug(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// The host and port of a `postgres://` URL.
pub fn database_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let host_port = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split('/').next().expect("host");
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("host:port")
}

/// `url` pointed at `addr` instead of its own host and port.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (user, host_and_path) = rest.split_once('@').expect("user@host");
    let path = host_and_path.split_once('/').map_or("", |(_, p)| p);
    format!("{scheme}://{user}@{addr}/{path}")
}

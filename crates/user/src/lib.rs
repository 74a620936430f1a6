//! The user service: tenants, users and sign-in (`agentic.user.v1.UserService`).
//!
//! `service.rs` implements the RPCs, `store.rs` holds the queries, `model.rs` the rows and
//! their protobuf mapping; this file wires them onto the shared server.

mod input;
pub mod model;
mod password;
pub mod schema;
pub mod service;
pub mod store;

use std::sync::Arc;

use agentic_platform::auth::{AuthLayer, Tokens};
use agentic_platform::cache::Cache;
use agentic_platform::config::{AuthArgs, CacheArgs, DatabaseArgs, ServerArgs, TelemetryArgs};
use agentic_platform::db::Pool;
use agentic_platform::error::Result;
use agentic_platform::paging::PageTokens;
use agentic_platform::server::{self, Server, ServiceSpec};
use agentic_proto::user::v1::user_service_server::UserServiceServer;
use clap::ArgAction;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

pub const SPEC: ServiceSpec = server::USER;

/// The user schema's migrations, embedded in the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/user");

/// Methods callable without a token.
pub const PUBLIC_METHODS: &[&str] = &["/agentic.user.v1.UserService/Authenticate"];

/// Everything the user service is configured with.
#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Apply pending migrations before serving.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = ArgAction::Set)]
    pub migrate_on_start: bool,
}

/// The assembled service with handles to its pool, cache and token keys.
pub struct UserApp {
    pub pool: Pool,
    pub cache: Cache,
    pub tokens: Arc<Tokens>,
    pages: PageTokens,
    server_args: ServerArgs,
}

impl UserApp {
    pub fn new(args: &UserArgs) -> Result<Self> {
        Ok(Self {
            pool: Pool::new(SPEC.name, &args.database),
            cache: Cache::new(&args.cache, SPEC.name),
            tokens: Arc::new(Tokens::new(&args.auth)?),
            // Page tokens get a key of their own, derived from the shared secret.
            pages: PageTokens::new(args.auth.jwt_secret.as_bytes()),
            server_args: args.server.clone(),
        })
    }

    /// The gRPC server with the service, health, reflection and the shared layers.
    pub fn server(&self) -> Server {
        let service = service::UserService::new(
            self.pool.clone(),
            self.cache.clone(),
            self.tokens.clone(),
            self.pages.clone(),
        );
        let grpc = UserServiceServer::new(service)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
        Server::new(
            SPEC,
            self.server_args.clone(),
            AuthLayer::new(self.tokens.clone(), PUBLIC_METHODS),
        )
        .add_service(grpc)
        .ready_when_database_answers(self.pool.clone())
    }

    /// Serves until SIGTERM/SIGINT or `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        self.server().run(listener, admin, shutdown).await
    }
}

/// Runs the user service as a process: telemetry, optional migrations, listeners, serve.
pub async fn run(args: UserArgs) -> Result<()> {
    let _telemetry = agentic_platform::telemetry::init(&args.telemetry, SPEC.name)?;
    if args.migrate_on_start {
        let applied =
            agentic_platform::db::run_migrations(&args.database.database_url, MIGRATIONS).await?;
        tracing::info!(?applied, "migrations applied");
    }
    let app = UserApp::new(&args)?;
    let (grpc, admin) = server::bind(SPEC, &args.server).await?;
    app.serve(grpc, Some(admin), CancellationToken::new()).await
}

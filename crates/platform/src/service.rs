//! A service is one implementation of [`ServiceType`]; everything else is shared.
//!
//! The trait says what differs between services (name and ports, migrations, public
//! methods, cache kinds, the tonic services themselves). [`App`] builds the shared
//! [`Context`] (pool, cache, tokens, page tokens) from [`ServiceArgs`] and serves it with
//! the platform's server; [`run`] adds telemetry, migrations and listeners for a process,
//! and [`main`] is a service binary's whole `main`.

use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, ArgMatches, Args, FromArgMatches};
use diesel_migrations::EmbeddedMigrations;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthLayer, Tokens};
use crate::cache::{Cache, KindSpec};
use crate::client::ClientArgs;
use crate::config::{
    AuthArgs, CacheArgs, DatabaseArgs, EmbeddingArgs, SecretsArgs, ServerArgs, TelemetryArgs,
};
use crate::db::Pool;
use crate::error::{Error, Result};
use crate::paging::PageTokens;
use crate::secrets::Sealer;
use crate::server::{Server, Services};

/// A service's name and default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Short name: labels metrics and logs, names the schema's migrations folder.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    pub grpc_port: u16,
    pub admin_port: u16,
}

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

/// What makes one service different from another.
pub trait ServiceType: Send + Sync + 'static {
    const SPEC: ServiceSpec;
    /// The service schema's migrations, embedded in the binary.
    const MIGRATIONS: EmbeddedMigrations;
    /// Full method paths (`/pkg.Service/Method`) callable without a token.
    const PUBLIC_METHODS: &'static [&'static str] = &[];
    /// What the service caches; each kind's TTL comes from its `CACHE_TTL_<SETTING>`.
    const CACHE_KINDS: &'static [KindSpec] = &[];
    /// The encoded descriptor set reflection serves.
    const FILE_DESCRIPTOR_SET: &'static [u8] = agentic_proto::FILE_DESCRIPTOR_SET;

    /// Builds the service's tonic services from the shared context.
    fn services(context: &Context, services: &mut Services) -> Result<()>;
}

/// What every service is built from.
#[derive(Clone)]
pub struct Context {
    pub pool: Pool,
    pub cache: Cache,
    pub tokens: Arc<Tokens>,
    pub pages: PageTokens,
    /// Largest request message, in bytes; [`grpc_server!`](crate::grpc_server) applies it
    /// to a generated server, so inflated messages are held to it too.
    pub max_message_size: usize,
    /// Seals stored secrets; `None` without `SECRETS_KEY` (see [`Context::sealer`]).
    pub secrets: Option<Sealer>,
    /// Where the other services are (see [`crate::client::Dependency`]).
    pub clients: ClientArgs,
    /// The embedding model, for services that embed text.
    pub embedding: EmbeddingArgs,
}

impl Context {
    /// The sealer, for services that store secrets: they cannot start without one.
    pub fn sealer(&self) -> Result<Sealer> {
        self.secrets
            .clone()
            .ok_or_else(|| Error::internal("SECRETS_KEY is required by this service"))
    }
}

/// Everything a service is configured with.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
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
    #[command(flatten)]
    pub secrets: SecretsArgs,
    #[command(flatten)]
    pub clients: ClientArgs,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
    /// Apply pending migrations before serving.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = ArgAction::Set)]
    pub migrate_on_start: bool,
}

/// [`ServiceArgs`] plus the `CACHE_TTL_<SETTING>` flags of `S`'s cache kinds, as clap
/// arguments for a binary or a subcommand.
pub struct ServiceCli<S> {
    pub args: ServiceArgs,
    service: PhantomData<fn() -> S>,
}

impl<S: ServiceType> FromArgMatches for ServiceCli<S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ServiceArgs::from_arg_matches(matches)?;
        args.cache.cache_ttls = crate::config::cache_ttls_from(matches, S::CACHE_KINDS);
        Ok(Self {
            args,
            service: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<S: ServiceType> Args for ServiceCli<S> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        crate::config::cache_ttl_args(ServiceArgs::augment_args(cmd), S::CACHE_KINDS)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A service assembled and ready to serve.
pub struct App<S> {
    context: Context,
    server: ServerArgs,
    service: PhantomData<fn() -> S>,
}

impl<S: ServiceType> App<S> {
    /// Builds the shared context. Connects to nothing yet: the service starts, and
    /// reports not ready, while the database is down.
    pub fn new(args: &ServiceArgs) -> Result<Self> {
        // Installed before any metric handle exists, so every handle records.
        crate::admin::metrics_handle();
        let name = S::SPEC.name;
        Ok(Self {
            context: Context {
                pool: Pool::new(name, &args.database),
                cache: Cache::new(&args.cache, name),
                tokens: Arc::new(Tokens::new(&args.auth)?),
                // Page tokens get a key of their own, derived from the shared secret.
                pages: PageTokens::new(args.auth.jwt_secret.as_bytes()),
                max_message_size: args.server.grpc_max_message_size,
                secrets: args
                    .secrets
                    .secrets_key
                    .as_deref()
                    .map(Sealer::new)
                    .transpose()?,
                clients: args.clients.clone(),
                embedding: args.embedding.clone(),
            },
            server: args.server.clone(),
            service: PhantomData,
        })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The gRPC server with the service, health, reflection and the shared layers.
    pub fn server(&self) -> Result<Server> {
        let mut services = Services::default();
        S::services(&self.context, &mut services)?;
        let auth = AuthLayer::new(self.context.tokens.clone(), S::PUBLIC_METHODS);
        Ok(Server::new(S::SPEC, self.server.clone(), auth, services)
            .describe(S::FILE_DESCRIPTOR_SET)
            .ready_when_database_answers(self.context.pool.clone()))
    }

    /// Serves until SIGTERM/SIGINT or `shutdown`, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        self.server()?.run(listener, admin, shutdown).await
    }
}

/// Runs a service as a process: telemetry, optional migrations, listeners, serve.
pub async fn run<S: ServiceType>(args: ServiceArgs) -> Result<()> {
    let _telemetry = crate::telemetry::init(&args.telemetry, S::SPEC.name)?;
    if args.migrate_on_start {
        let applied = crate::db::run_migrations(&args.database.database_url, S::MIGRATIONS).await?;
        tracing::info!(?applied, "migrations applied");
    }
    let app = App::<S>::new(&args)?;
    let (grpc, admin) = bind(S::SPEC, &args.server).await?;
    app.serve(grpc, Some(admin), CancellationToken::new()).await
}

/// The whole `main` of a service binary `agentic-<name>`: parse flags and environment,
/// run until stopped, exit non-zero on failure.
pub fn main<S: ServiceType>() -> ExitCode {
    let binary = format!("agentic-{}", S::SPEC.name);
    let command = ServiceCli::<S>::augment_args(clap::Command::new(binary.clone()))
        // After the flags: their block's doc would otherwise replace it.
        .about(S::SPEC.about)
        .version(env!("CARGO_PKG_VERSION"));
    let parsed = command
        .try_get_matches()
        .and_then(|matches| ServiceCli::<S>::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{binary}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::<S>(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{binary}: {error}");
            ExitCode::FAILURE
        }
    }
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

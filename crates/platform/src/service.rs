//! A service is one implementation of [`ServiceType`]; everything else is shared.
//!
//! The trait says what differs between services (name and ports, migrations, public
//! methods, cache kinds, the settings only it reads, the tonic services themselves).
//! [`App`] builds the shared [`Context`] (pool, cache, tokens, page tokens) from
//! [`ServiceArgs`] and serves it with the platform's server; [`run`] adds telemetry,
//! migrations and listeners for a process, and [`main`] is a service binary's whole
//! `main`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, ArgMatches, Args, FromArgMatches};
use diesel_migrations::EmbeddedMigrations;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::cache::{Cache, KindSpec};
use crate::config::{AuthArgs, CacheArgs, DatabaseArgs, ServerArgs, TelemetryArgs};
use crate::db::Pool;
use crate::error::{Error, Result};
use crate::idempotency::RequestIds;
use crate::paging::PageTokens;
use crate::principal::{PrincipalArgs, PrincipalCache, PrincipalCheck, PrincipalSource};
use crate::ratelimit::plans::Announcer;
use crate::ratelimit::{RateLimitArgs, RateLimiter};
use crate::server::layers::{AuthLayer, PrincipalLayer};
use crate::server::{Server, Services};

/// A service's name and default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Short name: labels metrics and logs, names the schema's migrations folder.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The gRPC port it listens on unless `GRPC_ADDR` says otherwise.
    pub grpc_port: u16,
    /// The admin HTTP port (`/metrics`, `/health/*`) unless `ADMIN_ADDR` says otherwise.
    pub admin_port: u16,
}

impl ServiceSpec {
    /// Where the service listens for gRPC: `GRPC_ADDR`, else its port on every interface.
    pub fn grpc_addr(&self, args: &ServerArgs) -> SocketAddr {
        args.grpc_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.grpc_port)))
    }

    /// Where the admin HTTP port listens: `ADMIN_ADDR`, else its port on every interface.
    pub fn admin_addr(&self, args: &ServerArgs) -> SocketAddr {
        args.admin_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.admin_port)))
    }
}

/// What makes one service different from another: each service crate's `lib.rs`
/// implements it once, and the platform runs every implementation the same way.
pub trait ServiceType: Send + Sync + 'static {
    /// Its name and default ports.
    const SPEC: ServiceSpec;
    /// The service schema's migrations, embedded in the binary.
    const MIGRATIONS: EmbeddedMigrations;
    /// Full method paths (`/pkg.Service/Method`) callable without a token.
    const PUBLIC_METHODS: &'static [&'static str] = &[];
    /// What the service caches; each kind's TTL comes from its `CACHE_TTL_<SETTING>`.
    const CACHE_KINDS: &'static [KindSpec] = &[];
    /// The encoded descriptor set reflection serves.
    const FILE_DESCRIPTOR_SET: &'static [u8] = agentic_proto::FILE_DESCRIPTOR_SET;
    /// Flags the testsuite gives [`Self::Args`] (after the test's own), for settings a
    /// service cannot run under test without (a secrets key, the model's folder).
    const TEST_FLAGS: &'static [&'static str] = &[];

    /// The settings only this service reads (a clap block flattened after the shared
    /// [`ServiceArgs`]), so `--help` of each service lists only what it reads;
    /// [`NoArgs`] for none.
    type Args: Args + FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static;

    /// Builds the service's tonic services (and background work) from the shared context
    /// and its own settings.
    fn services(context: &Context, args: &Self::Args, services: &mut Services) -> Result<()>;

    /// Where the principal check finds tenants' and users' standing: the user service
    /// (its database, or a call to it). `None` serves every valid token unchecked.
    fn principal_source(
        context: &Context,
        args: &Self::Args,
    ) -> Result<Option<Arc<dyn PrincipalSource>>>;
}

/// The settings of a service that reads none of its own.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct NoArgs {}

/// What every service is built from: the parts every service shares.
#[derive(Clone)]
pub struct Context {
    /// The service's own database.
    pub pool: Pool,
    /// The two-level cache, namespaced by the service's name.
    pub cache: Cache,
    /// Verifies (and, in the user service, issues) bearer tokens.
    pub tokens: Arc<Tokens>,
    /// Signs and checks `page_token`s.
    pub pages: PageTokens,
    /// Largest request message, in bytes; [`grpc_server!`](crate::grpc_server) applies it
    /// to a generated server, so inflated messages are held to it too.
    pub max_message_size: usize,
    /// Principals' standing, cached in every service; the user service drops entries here
    /// when tenants and users change.
    pub principals: PrincipalCache,
    /// The rate limiter (`None` where `RATE_LIMIT_ENABLED=false`); the server applies it
    /// to every call, and handlers to what only they can count (failed sign-ins).
    pub limiter: Option<RateLimiter>,
    /// Announces tenants' rate limit plans to every replica (the user service's job);
    /// `None` without Redis.
    pub plan_announcer: Option<Announcer>,
    /// Keys the digests of idempotent requests (see [`Context::request_ids`]).
    request_key: Arc<[u8]>,
}

impl Context {
    /// The request ids of idempotent creates kept in `table` (`<schema>.request_ids`).
    pub fn request_ids(&self, table: &'static str) -> RequestIds {
        RequestIds::new(table, &self.request_key)
    }
}

/// What every service is configured with (its own settings are [`ServiceType::Args`]).
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Its database and pool.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Its cache.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// How tokens are verified.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The gRPC server and the admin port.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// The principal check.
    #[command(flatten)]
    pub principals: PrincipalArgs,
    /// Rate limits.
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
    /// Apply pending migrations before serving.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = ArgAction::Set)]
    pub migrate_on_start: bool,
}

/// [`ServiceArgs`], `S`'s own settings and the `CACHE_TTL_<SETTING>` flags of `S`'s
/// cache kinds, as clap arguments for a binary or a subcommand.
pub struct ServiceCli<S: ServiceType> {
    /// The shared settings.
    pub args: ServiceArgs,
    /// The service's own.
    pub own: S::Args,
}

impl<S: ServiceType> FromArgMatches for ServiceCli<S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ServiceArgs::from_arg_matches(matches)?;
        args.cache.cache_ttls = crate::cache::kind::cache_ttls_from(matches, S::CACHE_KINDS);
        Ok(Self {
            args,
            own: S::Args::from_arg_matches(matches)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<S: ServiceType> Args for ServiceCli<S> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = S::Args::augment_args(ServiceArgs::augment_args(cmd));
        crate::cache::kind::cache_ttl_args(cmd, S::CACHE_KINDS)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A service assembled and ready to serve.
pub struct App<S: ServiceType> {
    context: Context,
    server: ServerArgs,
    check_principals: bool,
    own: S::Args,
}

impl<S: ServiceType> App<S> {
    /// Builds the shared context. Connects to nothing yet: the service starts, and
    /// reports not ready, while the database is down.
    pub fn new(args: &ServiceArgs, own: S::Args) -> Result<Self> {
        // Installed before any metric handle exists, so every handle records.
        crate::server::admin::metrics_handle();
        let name = S::SPEC.name;
        let tokens = Arc::new(Tokens::new(&args.auth)?);
        let pool = Pool::new(name, &args.database);
        if let Some(url) = args
            .cache
            .redis_url
            .as_deref()
            .filter(|url| !url.is_empty())
        {
            pool.share_writes_through(
                url,
                &args.cache.cache_key_prefix,
                std::time::Duration::from_millis(args.cache.redis_timeout),
            )?;
        }
        Ok(Self {
            context: Context {
                pool,
                cache: Cache::new(&args.cache, name),
                // Page tokens get a key of their own, derived from the shared secret.
                pages: PageTokens::new(args.auth.jwt_secret.as_bytes()),
                max_message_size: args.server.grpc_max_message_size,
                principals: PrincipalCache::new(&args.cache, &args.principals),
                // The key the service's own calls are proven counted with (`Tokens`).
                limiter: RateLimiter::new(
                    name,
                    &args.rate_limits,
                    &args.cache,
                    tokens.hop_key().clone(),
                )?,
                plan_announcer: match &args.cache.redis_url {
                    Some(url) => Some(
                        Announcer::new(url, &args.cache.cache_key_prefix)
                            .map_err(|e| Error::internal(format!("REDIS_URL: {e}")))?,
                    ),
                    None => None,
                },
                // A key of its own, derived from the shared secret, as page tokens' is.
                request_key: request_key(args.auth.jwt_secret.as_bytes()),
                tokens,
            },
            server: args.server.clone(),
            check_principals: args.principals.principal_check,
            own,
        })
    }

    /// The shared parts the service is built from.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The gRPC server with the service, health, reflection and the shared layers.
    pub fn server(&self) -> Result<Server> {
        let mut services = Services::default();
        S::services(&self.context, &self.own, &mut services)?;
        let auth = AuthLayer::new(self.context.tokens.clone(), S::PUBLIC_METHODS);
        let check = match self.check_principals {
            true => S::principal_source(&self.context, &self.own)?
                .map(|source| PrincipalCheck::new(self.context.principals.clone(), source)),
            false => None,
        };
        Ok(
            Server::new(S::SPEC.name, self.server.clone(), auth, services)
                .check_principals(PrincipalLayer::new(check))
                .limit_rates(self.context.limiter.clone())
                .describe(S::FILE_DESCRIPTOR_SET)
                .ready_when_database_answers(self.context.pool.clone()),
        )
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

/// The key request digests are made with: every replica derives the same one.
fn request_key(secret: &[u8]) -> Arc<[u8]> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"agentic request ids");
    mac.finalize().into_bytes().to_vec().into()
}

/// Runs a service as a process: telemetry, optional migrations, listeners, serve.
pub async fn run<S: ServiceType>(args: ServiceArgs, own: S::Args) -> Result<()> {
    // The metrics recorder first: trace export registers its own counter.
    crate::server::admin::metrics_handle();
    let _telemetry = crate::telemetry::init(&args.telemetry, S::SPEC.name)?;
    if args.migrate_on_start {
        let applied = crate::db::run_migrations(&args.database.database_url, S::MIGRATIONS).await?;
        tracing::info!(?applied, "migrations applied");
    }
    let app = App::<S>::new(&args, own)?;
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
    match runtime.block_on(run::<S>(cli.args, cli.own)) {
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

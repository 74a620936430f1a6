//! `agentic`: one command for operators and developers.
//!
//! - `agentic serve <service>`  run a service (user, …)
//! - `agentic migrate`     apply the embedded migrations
//! - `agentic token`       mint an access token for local use
//! - `agentic load`        drive a running service with gRPC load and report latencies
//! - `agentic health`      check a service's health (container health checks)

mod load;
mod services;

/// mimalloc: a request allocates many small, short-lived buffers, which it handles far
/// better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Duration;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::AuthArgs;
use clap::{Parser, Subcommand};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "agentic",
    version,
    about = "The Agentic Platform: services, migrations, tokens and load"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service in the foreground until SIGTERM or Ctrl-C.
    Serve {
        #[command(subcommand)]
        service: services::Serve,
    },
    /// Apply pending migrations of the chosen services to DATABASE_URL.
    Migrate {
        /// PostgreSQL URL to migrate.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Which service's schema to migrate.
        #[arg(long, default_value = "all", value_parser = services::schema_names())]
        service: String,
    },
    /// Mint a signed access token (for grpcurl and local tools).
    Token(TokenArgs),
    /// Load the suite with a scenario of weighted steps over the four services (or one RPC)
    /// and report requests/s, latency percentiles and errors.
    Load(Box<load::LoadArgs>),
    /// Ask a service's grpc.health.v1 Check; exit 0 only when it is SERVING
    /// (for container health checks, where images have no shell).
    Health {
        /// The service's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// Service name to check; empty for the whole server.
        #[arg(long, default_value = "")]
        service: String,
        /// Give up after this long (e.g. 2s).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    auth: AuthArgs,
    /// Tenant the token acts in (a tenant id).
    #[arg(
        long,
        required_unless_present = "platform",
        conflicts_with = "platform"
    )]
    tenant: Option<Uuid>,
    /// Role within the tenant: admin, member or viewer.
    #[arg(long, default_value = "admin", value_parser = [roles::ADMIN, roles::MEMBER, roles::VIEWER])]
    role: String,
    /// A platform token instead: creates tenants, belongs to none.
    #[arg(long)]
    platform: bool,
    /// Subject (`sub`) written into the token.
    #[arg(long, default_value = "agentic-cli")]
    subject: String,
    /// How long the token stays valid (e.g. 1h, 30m).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve { service } => {
            if service.name() == "agent" {
                // Before anything starts: it may execute this program again.
                agentic_agent::run::local::settle_math_threads();
            }
            service.run().await.map_err(anyhow::Error::from)
        }
        Command::Migrate {
            database_url,
            service,
        } => migrate(&database_url, &service).await,
        Command::Token(args) => token(&args),
        Command::Load(args) => load::run(*args).await,
        Command::Health {
            addr,
            service,
            timeout,
        } => health(addr, service, timeout).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentic: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(database_url: &str, service: &str) -> anyhow::Result<()> {
    let chosen = services::ALL
        .iter()
        .filter(|entry| service == "all" || entry.spec.name == service);
    for entry in chosen {
        let name = entry.spec.name;
        let applied =
            agentic_platform::db::run_migrations(database_url, (entry.migrations)()).await?;
        if applied.is_empty() {
            println!("{name}: up to date");
        } else {
            println!("{name}: applied {}", applied.join(", "));
        }
    }
    Ok(())
}

async fn health(addr: String, service: String, timeout: Duration) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(addr)?
            .connect()
            .await?;
        let reply = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest { service })
            .await?;
        anyhow::Ok(reply.into_inner().status())
    };
    let status = tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
    println!("{}", status.as_str_name());
    anyhow::ensure!(status == ServingStatus::Serving, "not serving");
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let tokens = Tokens::new(&args.auth)?;
    let (tenant, role) = if args.platform {
        (None, roles::PLATFORM)
    } else {
        (args.tenant, args.role.as_str())
    };
    let (token, _) = tokens.issue(&args.subject, tenant, role, Some(args.ttl))?;
    println!("{token}");
    Ok(())
}

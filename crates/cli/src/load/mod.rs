//! `agentic load`: the suite's own load tester.
//!
//! - Scenario mode (the default): weighted steps over the four services (a scenario file,
//!   [`scenario`]), run by virtual users that follow a plan or one of the seeds' profiles
//!   (the closed model), or sent at a fixed arrival rate (`--rate`, the open model); a
//!   report in JSON, Markdown and SVG; thresholds that set the exit code.
//! - `--rpc NAME`: one RPC, N in flight, for a fixed time, one JSON line (what `make bench`
//!   measures each service's hot path with).
//!
//! Both set up their own data through the public API, so they need the JWT secret the
//! services verify tokens with.

mod drive;
mod memory;
mod plan;
mod report;
mod rpc;
mod scenario;
mod stats;
mod svg;
mod text;
mod virtual_user;
mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentic_platform::auth::Tokens;
use agentic_platform::config::AuthArgs;
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use plan::{Plan, Profile};
use report::{Report, RunFacts, Threshold};
use scenario::Scenario;

#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    addresses: world::Addresses,
    /// A scenario file (TOML); the default is the one that ships with the project
    /// (crates/cli/scenarios/suite.toml).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// One of the seeds' profiles: light (10 users, 2 min), medium (50, 10 min), heavy
    /// (200, 30 min), ramped at the seeds' spawn rates.
    #[arg(long, value_enum, conflicts_with = "plan")]
    profile: Option<Profile>,
    /// Stages of virtual users, goose-style: "10,30s;50,2m;0,0s" (to 10 users over 30 s,
    /// to 50 over 2 minutes, then to none).
    #[arg(long)]
    plan: Option<String>,
    /// Virtual users when neither a profile nor a plan is given (closed model), or the
    /// users the arrivals of the open model take turns as.
    #[arg(long)]
    users: Option<usize>,
    /// The open model: this many calls a second, whatever the answers take; latency counts
    /// from when each call was due.
    #[arg(long)]
    rate: Option<f64>,
    /// The open model's calls in flight at most; beyond it an arrival waits (and its wait
    /// counts in its latency).
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// Stop after this long (shortens a profile or plan). Scenario mode: 60s when neither a
    /// profile nor a plan gives one. `--rpc`: how long to measure (default 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Each call's deadline.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// HTTP/2 connections to each service.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Write the JSON report here (schema `agentic-load/1`, docs/loadtest.md).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the Markdown summary here (it is printed either way).
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Write the plot (SVG: throughput, users, latency, memory) here.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Fail (exit 1) unless this holds, e.g. 'p95<500ms', 'errors<1%', 'rps>100',
    /// 'rag/Search:p99<1s'. Repeatable.
    #[arg(long = "threshold", value_name = "RULE")]
    thresholds: Vec<String>,
    /// Sample this process's resident memory during the run: name=pid. Repeatable.
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<memory::Watched>,
    /// How often `--watch` samples.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    watch_every: Duration,
    /// A progress line on stderr this often (0s: none).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    progress: Duration,

    /// Single-RPC mode: call this one RPC instead of a scenario.
    #[arg(long, value_enum, conflicts_with_all = ["scenario", "profile", "plan", "rate"])]
    rpc: Option<rpc::Rpc>,
    /// `--rpc`: the service under load.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// `--rpc`: where to create the test data when `addr` cannot (a bare baseline server).
    #[arg(long)]
    fixture_addr: Option<String>,
    /// `--rpc`: requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `--rpc`: write the request, as a framed gRPC message, to this file and print the
    /// method path and the `authorization` header instead of running (for h2load).
    #[arg(long)]
    h2load_request: Option<PathBuf>,
    #[command(flatten)]
    auth: AuthArgs,
}

const AFTER_HELP: &str = "\
Scenario steps (`call` in the file): health, authenticate, get_user, list_users, create_user,
get_agent, list_agents, create_conversation, append_messages, list_messages,
ingest_document, search, respond. Each step names its `weight` and `token` (user, admin or
none). See docs/loadtest.md for the file format and the report's schema.

Examples:
  agentic load --profile light --duration 1m --threshold 'p95<200ms' --threshold 'errors<0.1%'
  agentic load --plan '20,30s;100,2m;0,0s' --report run.json --plot run.svg
  agentic load --rate 200 --duration 2m --users 50
  agentic load --rpc get-user --addr http://127.0.0.1:50051";

pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<()> {
    match args.rpc {
        Some(rpc) => {
            rpc::run(rpc::RpcArgs {
                addr: args.addr,
                fixture_addr: args.fixture_addr,
                agent_addr: args.addresses.agent_addr,
                rpc,
                concurrency: args.concurrency,
                connections: args.connections,
                duration: args.duration.unwrap_or(Duration::from_secs(10)),
                h2load_request: args.h2load_request,
                auth: args.auth,
            })
            .await
        }
        None => run_scenario(args).await,
    }
}

/// The default length of a run that neither a profile nor a plan gives one.
const DEFAULT_LENGTH: Duration = Duration::from_secs(60);

async fn run_scenario(args: LoadArgs) -> anyhow::Result<()> {
    // Everything is checked before any load is sent.
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::parse(&text, &path.display().to_string())?
        }
        None => Scenario::parse(scenario::DEFAULT, "suite (default)")?,
    };
    let plan = match (&args.profile, &args.plan) {
        (Some(profile), _) => Some(profile.plan()),
        (None, Some(spec)) => Some(Plan::parse(spec)?),
        (None, None) => None,
    };
    let thresholds = args
        .thresholds
        .iter()
        .map(|text| Threshold::parse(text, &scenario))
        .collect::<anyhow::Result<Vec<_>>>()?;
    memory::check(&args.watch)?;
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be above 0");
    }
    let (model, plan, length, members) = match args.rate {
        Some(_) => {
            let length = args
                .duration
                .or(plan.as_ref().map(Plan::total))
                .unwrap_or(DEFAULT_LENGTH);
            let users = args.users.unwrap_or(50).max(1);
            (
                "open",
                Plan {
                    stages: vec![plan::Stage {
                        users,
                        over: length,
                    }],
                },
                length,
                users,
            )
        }
        None => {
            // Without a profile or plan: the users all at once, for the run's length.
            let plan = plan.unwrap_or_else(|| {
                let users = args.users.unwrap_or(10);
                Plan {
                    stages: vec![
                        plan::Stage {
                            users,
                            over: Duration::ZERO,
                        },
                        plan::Stage {
                            users,
                            over: DEFAULT_LENGTH,
                        },
                    ],
                }
            });
            let plan = match args.duration {
                Some(limit) => plan.cut(limit),
                None => plan,
            };
            anyhow::ensure!(plan.peak() > 0, "the plan runs no users");
            let length = plan.total();
            let peak = plan.peak();
            ("closed", plan, length, peak)
        }
    };

    let tokens = Tokens::new(&args.auth)?;
    let channels = world::Channels::connect(&args.addresses, args.connections).await?;
    eprintln!(
        "agentic load: setting up a tenant with {members} users, {} agents and {} documents",
        scenario.setup.agents, scenario.setup.documents
    );
    let world = world::World::create(
        tokens,
        &channels,
        members,
        scenario.setup.agents,
        scenario.setup.documents,
    )
    .await?;
    eprintln!(
        "agentic load: {model} model, scenario {}, {:.0} s",
        scenario.name,
        length.as_secs_f64()
    );

    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stats = Arc::new(stats::Stats::new(scenario.steps.len(), length));
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(memory::sample(
        args.watch.clone(),
        args.watch_every,
        stats.started(),
        stop_sampling.clone(),
    ));
    let load = Arc::new(drive::Load {
        scenario: Arc::new(scenario.clone()),
        world,
        channels,
        stats: stats.clone(),
        timeout: args.timeout,
        progress_every: args.progress,
    });
    match args.rate {
        Some(rate) => drive::open(load.clone(), rate, length, members, args.max_in_flight).await?,
        None => drive::closed(load.clone(), &plan).await,
    }
    let seconds = stats.started().elapsed().as_secs_f64();
    stop_sampling.cancel();
    let memory = sampler.await?;
    drop(load);
    let stats = Arc::into_inner(stats).context("the stats are still shared")?;
    let slice_s = stats.slice.as_secs_f64();
    let report = Report::build(
        &scenario,
        RunFacts {
            profile: args.profile,
            model,
            plan: plan.stages.clone(),
            rate: args.rate,
            started_at,
            seconds,
            timeout_ms: args.timeout.as_millis() as u64,
            slice_s,
        },
        stats.into_totals(),
        memory,
        &thresholds,
    );
    let summary = report.markdown();
    println!("{summary}");
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.summary {
        std::fs::write(path, &summary)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report.svg())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    anyhow::ensure!(report.passed(), "a threshold failed (see above)");
    Ok(())
}

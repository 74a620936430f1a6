//! The services this binary can serve and migrate: add a service here and
//! `agentic serve <name>` and `agentic migrate --service <name>` know it.

use agentic_platform::service::{ServiceCli, ServiceSpec, ServiceType};
use clap::{ArgMatches, Args, FromArgMatches, Subcommand};
use diesel_migrations::EmbeddedMigrations;
use futures::future::BoxFuture;

/// One servable service, with its flags and its process entry point.
pub(crate) struct Entry {
    pub(crate) spec: ServiceSpec,
    pub(crate) migrations: fn() -> EmbeddedMigrations,
    args: fn(clap::Command) -> clap::Command,
    run: fn(&ArgMatches) -> Result<Running, clap::Error>,
}

/// A service process, started by awaiting it.
type Running = BoxFuture<'static, agentic_platform::Result<()>>;

impl Entry {
    const fn of<S: ServiceType>() -> Self {
        Self {
            spec: S::SPEC,
            migrations: migrations_of::<S>,
            args: ServiceCli::<S>::augment_args,
            run: run_service::<S>,
        }
    }
}

fn migrations_of<S: ServiceType>() -> EmbeddedMigrations {
    S::MIGRATIONS
}

fn run_service<S: ServiceType>(matches: &ArgMatches) -> Result<Running, clap::Error> {
    let cli = ServiceCli::<S>::from_arg_matches(matches)?;
    Ok(Box::pin(agentic_platform::service::run::<S>(
        cli.args, cli.own,
    )))
}

/// Every service, in port order.
pub(crate) const ALL: &[Entry] = &[
    Entry::of::<agentic_user::UserApp>(),
    Entry::of::<agentic_agent::AgentApp>(),
    Entry::of::<agentic_conversation::ConversationApp>(),
    Entry::of::<agentic_rag::RagApp>(),
];

/// `agentic serve <service> [flags]`: the chosen service, configured.
pub(crate) struct Serve {
    name: &'static str,
    running: Running,
}

impl Serve {
    /// The service's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) async fn run(self) -> agentic_platform::Result<()> {
        self.running.await
    }
}

impl FromArgMatches for Serve {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = matches
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let entry = ALL
            .iter()
            .find(|entry| entry.spec.name == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        (entry.run)(sub).map(|running| Self {
            name: entry.spec.name,
            running,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for Serve {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        ALL.iter().fold(cmd, |cmd, entry| {
            let sub = (entry.args)(clap::Command::new(entry.spec.name));
            // After the flags: their block's doc would otherwise replace it.
            cmd.subcommand(sub.about(entry.spec.about))
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        ALL.iter().any(|entry| entry.spec.name == name)
    }
}

/// The names `--service` accepts: every service, or `all`.
pub(crate) fn schema_names() -> Vec<&'static str> {
    std::iter::once("all")
        .chain(ALL.iter().map(|entry| entry.spec.name))
        .collect()
}

//! The agent service: agents, the MCP servers they call, and workflows of agents
//! (`agentic.agent.v1.AgentService`).
//!
//! `service/` implements the RPCs (one module per resource), `input.rs` the validation,
//! `store/` the queries (one file per resource), `model.rs` the rows and their protobuf
//! mapping, `args.rs` the service's own settings; this file declares the service to the
//! platform.

pub mod args;
mod input;
pub mod knowledge;
pub mod mcp;
pub mod model;
pub mod run;
pub mod schema;
pub mod service;
pub mod store;
pub mod workflow;

use std::sync::Arc;

use agentic_platform::cache::KindSpec;
use agentic_platform::error::Result;
use agentic_platform::principal::{PrincipalSource, RemotePrincipals};
use agentic_platform::server::Services;
use agentic_platform::service::{Context, ServiceSpec, ServiceType};
use agentic_proto::agent::v1::agent_service_server::AgentServiceServer;
use args::AgentArgs;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// What the agent service caches, with the seeds' TTLs.
pub mod kinds {
    use super::KindSpec;

    /// Every agent entry of a tenant, dropped at once when a write changes many agents.
    pub const AGENTS: &str = "agents";

    pub const AGENT: KindSpec = KindSpec::new("agent").default_ttl(300).in_namespace(AGENTS);
    pub const AGENT_BY_SLUG: KindSpec = KindSpec::new("agent_by_slug")
        .ttl_of("agent")
        .default_ttl(300)
        .in_namespace(AGENTS);
    pub const MCP_SERVER: KindSpec = KindSpec::new("mcp_server").default_ttl(600);
    pub const WORKFLOW: KindSpec = KindSpec::new("workflow").default_ttl(300);
}

/// The agent service, as the platform runs it.
pub struct AgentApp;

impl ServiceType for AgentApp {
    const SPEC: ServiceSpec = ServiceSpec {
        name: "agent",
        about: "The Agentic agent service: agents, MCP servers and workflows",
        grpc_port: 50052,
        admin_port: 9152,
    };
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/agent");
    const CACHE_KINDS: &'static [KindSpec] = &[
        kinds::AGENT,
        kinds::AGENT_BY_SLUG,
        kinds::MCP_SERVER,
        kinds::WORKFLOW,
    ];

    /// A fixed key: tests seal and open headers in one process. The repository's own
    /// model, loaded by the tests that use it.
    const TEST_FLAGS: &'static [&'static str] = &[
        "--secrets-key",
        "e2e-test-secrets-key-0123456789abcdef",
        "--local-model-path",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../.local/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        ),
        "--local-model-preload",
        "false",
    ];

    type Args = AgentArgs;

    fn services(context: &Context, args: &AgentArgs, services: &mut Services) -> Result<()> {
        let request_ids = context.request_ids(service::REQUEST_IDS);
        let pool = context.pool.clone();
        services.background(move |stop| request_ids.clean_up(pool, stop));
        let service = service::AgentService::new(context, args)?;
        let resumer = service.clone();
        services.background(move |stop| resumer.resume_lapsed_runs(stop));
        if args.models.local_model_preload {
            let models = service.models();
            services.background(move |_stop| async move {
                if let Err(error) = models.load_local().await {
                    tracing::warn!(%error, "the local chat model is not available");
                }
            });
        }
        services.add(agentic_platform::grpc_server!(
            AgentServiceServer::from_arc(service),
            context
        ));
        Ok(())
    }

    fn principal_source(
        context: &Context,
        args: &Self::Args,
    ) -> Result<Option<Arc<dyn PrincipalSource>>> {
        let source = RemotePrincipals::new(Self::SPEC.name, &args.users, context.tokens.clone())?;
        Ok(Some(Arc::new(source)))
    }
}

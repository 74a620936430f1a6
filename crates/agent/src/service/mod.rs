//! The `agentic.agent.v1.AgentService` implementation: one module per resource
//! (`agents`, `mcp_servers`, `workflows`); this file holds what they share and the
//! tonic trait, which hands each RPC to its module.

mod agents;
mod mcp_servers;
mod runs;
mod workflow_runs;
mod workflows;

use std::sync::{Arc, Weak};
use std::time::Duration;

use agentic_platform::auth::Tokens;
use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::error::Result;
use agentic_platform::idempotency::RequestIds;
use agentic_platform::paging::PageTokens;
use agentic_platform::secrets::Sealer;
use agentic_platform::service::Context;
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::agent_service_server::AgentService as Api;
use tonic::{Request, Response, Status};

use crate::args::{AgentArgs, WorkflowRunArgs};
use crate::kinds;
use crate::knowledge::Knowledge;
use crate::mcp::McpArgs;
use crate::run::Models;

/// Where the service keeps idempotent creates' request ids.
pub const REQUEST_IDS: &str = "agents.request_ids";

/// How long a deleted agent can be restored.
pub const UNDELETE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct AgentService {
    pool: Pool,
    cache: Cache,
    pages: PageTokens,
    /// Seals MCP server header values.
    sealer: Sealer,
    kinds: Kinds,
    /// Idempotent creates' request ids.
    request_ids: RequestIds,
    /// The chat models agents run on.
    models: Arc<Models>,
    /// Agents' collections, in the RAG service.
    knowledge: Knowledge,
    /// How MCP servers are reached.
    mcp: McpArgs,
    /// Signs the tokens workflow runs call other services with.
    tokens: Arc<Tokens>,
    workflow_runs: WorkflowRunArgs,
    /// The workflow runs this process drives.
    live: workflow_runs::RunOwner,
    /// The service itself, for the tasks that drive workflow runs.
    me: Weak<AgentService>,
}

/// Cached kinds: agents by id and by slug, MCP servers and workflows by id.
struct Kinds {
    agent: CacheKind,
    agent_by_slug: CacheKind,
    mcp_server: CacheKind,
    workflow: CacheKind,
}

/// A cache entry a write made stale.
type StaleKey<'k> = (&'k CacheKind, ScopedKey<String>);

impl AgentService {
    /// Fails if `SECRETS_KEY` is too short to seal MCP server headers with.
    pub fn new(context: &Context, args: &AgentArgs) -> Result<Arc<Self>> {
        let cache = &context.cache;
        let sealer = Sealer::new(&args.secrets_key)?;
        let models = Arc::new(Models::new(&args.models)?);
        let knowledge = Knowledge::new(args)?;
        Ok(Arc::new_cyclic(|me| Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            pages: context.pages.clone(),
            sealer,
            request_ids: context.request_ids(REQUEST_IDS),
            models,
            knowledge,
            mcp: args.mcp.clone(),
            tokens: context.tokens.clone(),
            workflow_runs: args.workflow_runs.clone(),
            live: workflow_runs::RunOwner::new(),
            me: me.clone(),
            kinds: Kinds {
                agent: cache.kind(&kinds::AGENT),
                agent_by_slug: cache.kind(&kinds::AGENT_BY_SLUG),
                mcp_server: cache.kind(&kinds::MCP_SERVER),
                workflow: cache.kind(&kinds::WORKFLOW),
            },
        }))
    }

    /// Takes up workflow runs whose process died, until `stop`.
    pub async fn resume_lapsed_runs(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        workflow_runs::resume_lapsed(self, stop).await;
    }
}

impl AgentService {
    /// The chat models, to load the local one ahead of its first answer.
    pub fn models(&self) -> Arc<Models> {
        self.models.clone()
    }
}

#[tonic::async_trait]
impl Api for AgentService {
    type RunAgentStream = runs::RunStream;
    type ExecuteWorkflowStream = workflow_runs::RunEvents;

    async fn execute_workflow(
        &self,
        request: Request<pb::ExecuteWorkflowRequest>,
    ) -> Result<Response<Self::ExecuteWorkflowStream>, Status> {
        workflow_runs::execute(self, request).await
    }

    async fn get_workflow_run(
        &self,
        request: Request<pb::GetWorkflowRunRequest>,
    ) -> Result<Response<pb::GetWorkflowRunResponse>, Status> {
        workflow_runs::get(self, request).await
    }

    async fn list_workflow_runs(
        &self,
        request: Request<pb::ListWorkflowRunsRequest>,
    ) -> Result<Response<pb::ListWorkflowRunsResponse>, Status> {
        workflow_runs::list(self, request).await
    }

    async fn cancel_workflow_run(
        &self,
        request: Request<pb::CancelWorkflowRunRequest>,
    ) -> Result<Response<pb::CancelWorkflowRunResponse>, Status> {
        workflow_runs::cancel(self, request).await
    }

    async fn run_agent(
        &self,
        request: Request<pb::RunAgentRequest>,
    ) -> Result<Response<Self::RunAgentStream>, Status> {
        runs::run(self, request).await
    }

    async fn refresh_mcp_server_tools(
        &self,
        request: Request<pb::RefreshMcpServerToolsRequest>,
    ) -> Result<Response<pb::RefreshMcpServerToolsResponse>, Status> {
        mcp_servers::refresh_tools(self, request).await
    }

    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreateAgentResponse>, Status> {
        agents::create(self, request).await
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::GetAgentResponse>, Status> {
        agents::get(self, request).await
    }

    async fn get_agent_by_slug(
        &self,
        request: Request<pb::GetAgentBySlugRequest>,
    ) -> Result<Response<pb::GetAgentBySlugResponse>, Status> {
        agents::get_by_slug(self, request).await
    }

    async fn batch_get_agents(
        &self,
        request: Request<pb::BatchGetAgentsRequest>,
    ) -> Result<Response<pb::BatchGetAgentsResponse>, Status> {
        agents::batch_get(self, request).await
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        agents::list(self, request).await
    }

    async fn update_agent(
        &self,
        request: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::UpdateAgentResponse>, Status> {
        agents::update(self, request).await
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteAgentResponse>, Status> {
        agents::delete(self, request).await
    }

    async fn undelete_agent(
        &self,
        request: Request<pb::UndeleteAgentRequest>,
    ) -> Result<Response<pb::UndeleteAgentResponse>, Status> {
        agents::undelete(self, request).await
    }

    async fn create_mcp_server(
        &self,
        request: Request<pb::CreateMcpServerRequest>,
    ) -> Result<Response<pb::CreateMcpServerResponse>, Status> {
        mcp_servers::create(self, request).await
    }

    async fn get_mcp_server(
        &self,
        request: Request<pb::GetMcpServerRequest>,
    ) -> Result<Response<pb::GetMcpServerResponse>, Status> {
        mcp_servers::get(self, request).await
    }

    async fn list_mcp_servers(
        &self,
        request: Request<pb::ListMcpServersRequest>,
    ) -> Result<Response<pb::ListMcpServersResponse>, Status> {
        mcp_servers::list(self, request).await
    }

    async fn update_mcp_server(
        &self,
        request: Request<pb::UpdateMcpServerRequest>,
    ) -> Result<Response<pb::UpdateMcpServerResponse>, Status> {
        mcp_servers::update(self, request).await
    }

    async fn delete_mcp_server(
        &self,
        request: Request<pb::DeleteMcpServerRequest>,
    ) -> Result<Response<pb::DeleteMcpServerResponse>, Status> {
        mcp_servers::delete(self, request).await
    }

    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::CreateWorkflowResponse>, Status> {
        workflows::create(self, request).await
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        workflows::get(self, request).await
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        workflows::list(self, request).await
    }

    async fn update_workflow(
        &self,
        request: Request<pb::UpdateWorkflowRequest>,
    ) -> Result<Response<pb::UpdateWorkflowResponse>, Status> {
        workflows::update(self, request).await
    }

    async fn delete_workflow(
        &self,
        request: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        workflows::delete(self, request).await
    }

    async fn validate_workflow(
        &self,
        request: Request<pb::ValidateWorkflowRequest>,
    ) -> Result<Response<pb::ValidateWorkflowResponse>, Status> {
        workflows::validate(self, request).await
    }
}

//! Fixtures for the agent service's tests.

use agentic_agent::AgentApp;
use agentic_platform::auth::roles;
use agentic_platform::testsuite::{self, BearerChannel, TestService};
use agentic_proto::agent::v1 as pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use uuid::Uuid;

pub type AgentClient = AgentServiceClient<BearerChannel>;
/// A running agent service.
pub type AgentService = TestService<AgentApp>;
/// A test's own database and an agent service on it.
pub type AgentHarness = testsuite::Harness<AgentApp>;

/// What tests do with a running agent service.
#[allow(async_fn_in_trait)]
pub trait AgentFixture {
    /// A client that sends `token` (none when `None`).
    async fn client(&self, token: Option<&str>) -> AgentClient;

    /// A client acting in `tenant` with `role`.
    async fn client_as(&self, tenant: Uuid, role: &str) -> AgentClient;

    /// A new tenant (tenants live in the user service; here an id in a token is all it
    /// takes) and an admin client for it.
    async fn tenant(&self) -> (Uuid, AgentClient);
}

impl AgentFixture for AgentService {
    async fn client(&self, token: Option<&str>) -> AgentClient {
        AgentServiceClient::new(self.bearer_channel(token).await)
    }

    async fn client_as(&self, tenant: Uuid, role: &str) -> AgentClient {
        self.client(Some(&self.token(tenant, role))).await
    }

    async fn tenant(&self) -> (Uuid, AgentClient) {
        let tenant = Uuid::now_v7();
        (tenant, self.client_as(tenant, roles::ADMIN).await)
    }
}

/// An agent to create: `slug`, named after it, on `model`.
pub fn agent(slug: &str, model: &str) -> pb::Agent {
    pb::Agent {
        name: format!("Agent {slug}"),
        slug: slug.to_owned(),
        model: model.to_owned(),
        system_prompt: "You are helpful.\nBe brief.".to_owned(),
        ..Default::default()
    }
}

/// Creates `agent` and returns it as stored.
pub async fn create_agent(client: &mut AgentClient, agent: pb::Agent) -> pb::Agent {
    client
        .create_agent(pb::CreateAgentRequest {
            request_id: String::new(),
            agent: Some(agent),
        })
        .await
        .expect("create agent")
        .into_inner()
        .agent
        .expect("agent")
}

/// A plain get of `id`.
pub fn get_agent(id: &str) -> pb::GetAgentRequest {
    pb::GetAgentRequest {
        id: id.to_owned(),
        read_mask: None,
    }
}

/// A field mask of `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// An enabled streamable-HTTP MCP server with one secret header.
pub fn mcp_server(name: &str, secret: &str) -> pb::McpServer {
    pb::McpServer {
        name: name.to_owned(),
        transport: pb::McpTransport::StreamableHttp as i32,
        url: "https://tools.example.com/mcp".to_owned(),
        headers: [("Authorization".to_owned(), format!("Bearer {secret}"))]
            .into_iter()
            .collect(),
        enabled: true,
        ..Default::default()
    }
}

pub async fn create_mcp_server(client: &mut AgentClient, server: pb::McpServer) -> pb::McpServer {
    client
        .create_mcp_server(pb::CreateMcpServerRequest {
            request_id: String::new(),
            mcp_server: Some(server),
        })
        .await
        .expect("create MCP server")
        .into_inner()
        .mcp_server
        .expect("server")
}

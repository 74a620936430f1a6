//! The agent and user services, as this service calls them: every call carries the
//! caller's own token, so another tenant's agents and users stay invisible here too.

use std::collections::HashMap;

use agentic_platform::client::{CallError, Credentials, Dependency, Rpc};
use agentic_platform::error::{Error, Result};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::user::v1 as user_pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::args::ConversationArgs;

pub(super) struct Dependencies {
    agents: Dependency,
    users: Dependency,
}

/// `NOT_FOUND` from a dependency as this service's own `NOT_FOUND` of `what`.
fn not_found_as(what: &'static str) -> impl Fn(CallError) -> Error {
    move |error| match error {
        CallError::Status(status) if status.code() == Code::NotFound => Error::NotFound(what),
        other => other.into(),
    }
}

fn read_mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

impl Dependencies {
    pub(super) fn new(args: &ConversationArgs) -> Result<Self> {
        Ok(Self {
            agents: Dependency::new("agent", &args.agent_service_url, &args.users.client)?,
            users: Dependency::new("user", &args.users.user_service_url, &args.users.client)?,
        })
    }

    /// Fails unless `id` is an active agent of the caller's tenant.
    pub(super) async fn require_active_agent(
        &self,
        credentials: &Credentials,
        id: Uuid,
    ) -> Result<()> {
        let request = agent_pb::GetAgentRequest {
            id: id.to_string(),
            read_mask: read_mask(&["id", "status"]),
        };
        let agent = self
            .agents
            .call(
                Rpc::read("agentic.agent.v1.AgentService", "GetAgent"),
                credentials,
                request,
                |channel, request| async move {
                    AgentServiceClient::new(channel).get_agent(request).await
                },
            )
            .await
            .map_err(not_found_as("agent"))?
            .agent
            .ok_or(Error::NotFound("agent"))?;
        match agent_pb::AgentStatus::try_from(agent.status) {
            Ok(agent_pb::AgentStatus::Active) => Ok(()),
            Ok(agent_pb::AgentStatus::Paused) => Err(Error::FailedPrecondition(
                "agent_id: the agent is paused".into(),
            )),
            _ => Err(Error::FailedPrecondition(
                "agent_id: the agent is not active".into(),
            )),
        }
    }

    /// Fails unless `id` is an active user of the caller's tenant.
    pub(super) async fn require_active_user(
        &self,
        credentials: &Credentials,
        id: Uuid,
    ) -> Result<()> {
        let request = user_pb::GetUserRequest {
            id: id.to_string(),
            read_mask: read_mask(&["id", "status"]),
        };
        let user = self
            .users
            .call(
                Rpc::read("agentic.user.v1.UserService", "GetUser"),
                credentials,
                request,
                |channel, request| async move {
                    UserServiceClient::new(channel).get_user(request).await
                },
            )
            .await
            .map_err(not_found_as("user"))?
            .user
            .ok_or(Error::NotFound("user"))?;
        if user.status == user_pb::UserStatus::Active as i32 {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(
                "user_id: the user is not active".into(),
            ))
        }
    }

    /// The names of the live agents among `ids`, in one BatchGetAgents call.
    pub(super) async fn agent_names(
        &self,
        credentials: &Credentials,
        ids: Vec<String>,
    ) -> Result<HashMap<String, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let request = agent_pb::BatchGetAgentsRequest {
            ids,
            read_mask: read_mask(&["id", "name"]),
        };
        let found = self
            .agents
            .call(
                Rpc::read("agentic.agent.v1.AgentService", "BatchGetAgents"),
                credentials,
                request,
                |channel, request| async move {
                    AgentServiceClient::new(channel)
                        .batch_get_agents(request)
                        .await
                },
            )
            .await?;
        Ok(found
            .agents
            .into_iter()
            .map(|agent| (agent.id, agent.name))
            .collect())
    }

    /// Starts the agent's answer (RunAgent) with the caller's credentials. A status the
    /// agent service answered with is passed on as it is: it names the caller's mistake
    /// (a field, the agent's model) or the model's state (busy, its provider down).
    pub(super) async fn run_agent(
        &self,
        credentials: &Credentials,
        request: agent_pb::RunAgentRequest,
    ) -> Result<tonic::Streaming<agent_pb::RunAgentEvent>, tonic::Status> {
        self.agents
            .call(
                Rpc::write("agentic.agent.v1.AgentService", "RunAgent"),
                credentials,
                request,
                |channel, request| async move {
                    AgentServiceClient::new(channel).run_agent(request).await
                },
            )
            .await
            .map_err(|error| match error {
                CallError::Status(status) => status,
                other => Error::from(other).into(),
            })
    }
}

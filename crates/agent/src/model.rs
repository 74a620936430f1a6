//! Rows, domain enums, and their mapping to and from protobuf.

use agentic_platform::json;
use agentic_platform::time::to_timestamp;
use agentic_proto::agent::v1 as pb;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::{agents, mcp_servers, workflow_runs, workflows};

/// The etag of a row: its update time in microseconds, which every write moves forward
/// (see `store::next_update_time`).
pub fn etag(updated_at: DateTime<Utc>) -> String {
    updated_at.timestamp_micros().to_string()
}

// ---- agents ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agents, check_for_backend(diesel::pg::Pg))]
pub struct AgentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub model: String,
    pub system_prompt: String,
    pub temperature: f32,
    pub max_tokens: i32,
    pub config: serde_json::Value,
    pub mcp_server_ids: Vec<Uuid>,
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub collection_ids: Vec<Uuid>,
    pub retrieval_top_k: i32,
    pub retrieval_min_score: Option<f32>,
    pub retrieval_mode: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = agents)]
pub struct NewAgent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub model: String,
    pub system_prompt: String,
    pub temperature: f32,
    pub max_tokens: i32,
    pub config: serde_json::Value,
    pub mcp_server_ids: Vec<Uuid>,
    pub status: String,
    pub created_by: String,
    pub collection_ids: Vec<Uuid>,
    pub retrieval_top_k: i32,
    pub retrieval_min_score: Option<f32>,
    pub retrieval_mode: String,
}

/// The columns an update writes; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = agents)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<i32>,
    pub config: Option<serde_json::Value>,
    pub mcp_server_ids: Option<Vec<Uuid>>,
    pub status: Option<String>,
    pub collection_ids: Option<Vec<Uuid>>,
    pub retrieval_top_k: Option<i32>,
    pub retrieval_min_score: Option<Option<f32>>,
    pub retrieval_mode: Option<String>,
}

/// Filters of an agent listing.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub status: Option<&'static str>,
    pub model: Option<String>,
}

impl AgentFilter {
    /// What a page token is bound to, so it cannot be replayed with other filters.
    pub fn fingerprint(&self, tenant: Uuid) -> String {
        format!(
            "agents|{tenant}|{}|{}",
            self.status.unwrap_or(""),
            self.model.as_deref().unwrap_or("")
        )
    }
}

/// The stored status of an agent that may run, and every new agent's by default.
pub const ACTIVE: &str = "active";

pub fn agent_status_name(status: pb::AgentStatus) -> Option<&'static str> {
    match status {
        pb::AgentStatus::Active => Some(ACTIVE),
        pb::AgentStatus::Paused => Some("paused"),
        pb::AgentStatus::Archived => Some("archived"),
        pb::AgentStatus::Unspecified => None,
    }
}

fn agent_status_from_name(name: &str) -> pb::AgentStatus {
    match name {
        ACTIVE => pb::AgentStatus::Active,
        "paused" => pb::AgentStatus::Paused,
        "archived" => pb::AgentStatus::Archived,
        _ => pb::AgentStatus::Unspecified,
    }
}

impl From<AgentRow> for pb::Agent {
    fn from(row: AgentRow) -> Self {
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: row.name,
            slug: row.slug,
            description: row.description,
            model: row.model,
            system_prompt: row.system_prompt,
            temperature: Some(row.temperature),
            max_tokens: Some(row.max_tokens),
            config: Some(json::to_struct(&row.config)),
            mcp_server_ids: row.mcp_server_ids.iter().map(Uuid::to_string).collect(),
            status: agent_status_from_name(&row.status) as i32,
            created_by: row.created_by,
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
            etag: etag(row.updated_at),
            collection_ids: row.collection_ids.iter().map(Uuid::to_string).collect(),
            retrieval: Some(pb::Retrieval {
                top_k: Some(row.retrieval_top_k),
                min_score: row.retrieval_min_score,
                mode: retrieval_mode_from_name(&row.retrieval_mode) as i32,
            }),
        }
    }
}

/// The stored retrieval mode of every agent that names none.
pub const HYBRID: &str = "hybrid";

pub fn retrieval_mode_name(mode: pb::RetrievalMode) -> &'static str {
    match mode {
        pb::RetrievalMode::Dense => "dense",
        pb::RetrievalMode::Hybrid | pb::RetrievalMode::Unspecified => HYBRID,
    }
}

pub fn retrieval_mode_from_name(name: &str) -> pb::RetrievalMode {
    match name {
        "dense" => pb::RetrievalMode::Dense,
        _ => pb::RetrievalMode::Hybrid,
    }
}

agentic_platform::read_mask!(
    pub fn apply_agent_mask(pb::Agent),
    AGENT_FIELDS = [
        id,
        tenant_id,
        name,
        slug,
        description,
        model,
        system_prompt,
        temperature,
        max_tokens,
        config,
        mcp_server_ids,
        status,
        created_by,
        create_time,
        update_time,
        etag,
        collection_ids,
        retrieval,
    ]
);

// ---- MCP servers ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mcp_servers, check_for_backend(diesel::pg::Pg))]
pub struct McpServerRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub transport: String,
    pub url: String,
    pub command: String,
    pub args: Vec<String>,
    pub headers_sealed: Option<Vec<u8>>,
    pub header_names: Vec<String>,
    pub enabled: bool,
    pub tools: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub discovered_at: Option<DateTime<Utc>>,
    pub discovery_error: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = mcp_servers)]
pub struct NewMcpServer {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub transport: String,
    pub url: String,
    pub command: String,
    pub args: Vec<String>,
    pub headers_sealed: Option<Vec<u8>>,
    pub header_names: Vec<String>,
    pub enabled: bool,
    pub tools: serde_json::Value,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = mcp_servers)]
pub struct McpServerChanges {
    pub name: Option<String>,
    pub transport: Option<String>,
    pub url: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub headers_sealed: Option<Option<Vec<u8>>>,
    pub header_names: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub tools: Option<serde_json::Value>,
}

pub fn transport_name(transport: pb::McpTransport) -> Option<&'static str> {
    match transport {
        pb::McpTransport::Stdio => Some("stdio"),
        pb::McpTransport::Sse => Some("sse"),
        pb::McpTransport::StreamableHttp => Some("streamable_http"),
        pb::McpTransport::Unspecified => None,
    }
}

fn transport_from_name(name: &str) -> pb::McpTransport {
    match name {
        "stdio" => pb::McpTransport::Stdio,
        "sse" => pb::McpTransport::Sse,
        "streamable_http" => pb::McpTransport::StreamableHttp,
        _ => pb::McpTransport::Unspecified,
    }
}

/// A discovered tool as stored in `tools`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolJson {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input_schema: serde_json::Value,
}

impl McpServerRow {
    /// The tools last discovered (or set).
    pub fn tools(&self) -> Vec<ToolJson> {
        serde_json::from_value(self.tools.clone()).unwrap_or_default()
    }
}

/// The server as clients see it: header values never leave the service.
impl From<McpServerRow> for pb::McpServer {
    fn from(row: McpServerRow) -> Self {
        let tools = row.tools();
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: row.name,
            transport: transport_from_name(&row.transport) as i32,
            url: row.url,
            command: row.command,
            args: row.args,
            headers: Default::default(),
            header_names: row.header_names,
            enabled: row.enabled,
            tools: tools
                .into_iter()
                .map(|tool| pb::McpTool {
                    name: tool.name,
                    description: tool.description,
                    input_schema: Some(json::to_struct(&tool.input_schema)),
                })
                .collect(),
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
            etag: etag(row.updated_at),
            discover_time: row.discovered_at.map(to_timestamp),
            discovery_error: row.discovery_error,
        }
    }
}

// ---- workflows ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workflows, check_for_backend(diesel::pg::Pg))]
pub struct WorkflowRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub steps: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = workflows)]
pub struct NewWorkflow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub steps: serde_json::Value,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = workflows)]
pub struct WorkflowChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub steps: Option<serde_json::Value>,
}

/// A workflow step as stored in `steps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepJson {
    #[serde(default)]
    pub name: String,
    pub agent_id: Uuid,
    #[serde(default)]
    pub input_template: String,
}

impl WorkflowRow {
    pub fn steps(&self) -> Vec<StepJson> {
        serde_json::from_value(self.steps.clone()).unwrap_or_default()
    }
}

impl From<WorkflowRow> for pb::Workflow {
    fn from(row: WorkflowRow) -> Self {
        let steps = row.steps();
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: row.name,
            description: row.description,
            steps: steps
                .into_iter()
                .map(|step| pb::WorkflowStep {
                    name: step.name,
                    agent_id: step.agent_id.to_string(),
                    input_template: step.input_template,
                })
                .collect(),
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
            etag: etag(row.updated_at),
        }
    }
}

// ---- workflow runs ----

pub const RUN_QUEUED: &str = "queued";
pub const RUN_RUNNING: &str = "running";
pub const RUN_SUCCEEDED: &str = "succeeded";
pub const RUN_FAILED: &str = "failed";
pub const RUN_CANCELLED: &str = "cancelled";
/// The statuses of a run not finished yet: it holds a lease, and may be written.
pub const RUN_UNFINISHED: [&str; 2] = [RUN_QUEUED, RUN_RUNNING];

pub fn run_status_name(status: pb::WorkflowRunStatus) -> Option<&'static str> {
    Some(match status {
        pb::WorkflowRunStatus::Queued => RUN_QUEUED,
        pb::WorkflowRunStatus::Running => RUN_RUNNING,
        pb::WorkflowRunStatus::Succeeded => RUN_SUCCEEDED,
        pb::WorkflowRunStatus::Failed => RUN_FAILED,
        pb::WorkflowRunStatus::Cancelled => RUN_CANCELLED,
        pb::WorkflowRunStatus::Unspecified => return None,
    })
}

fn run_status_from_name(name: &str) -> pb::WorkflowRunStatus {
    match name {
        RUN_QUEUED => pb::WorkflowRunStatus::Queued,
        RUN_RUNNING => pb::WorkflowRunStatus::Running,
        RUN_SUCCEEDED => pb::WorkflowRunStatus::Succeeded,
        RUN_FAILED => pb::WorkflowRunStatus::Failed,
        RUN_CANCELLED => pb::WorkflowRunStatus::Cancelled,
        _ => pb::WorkflowRunStatus::Unspecified,
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = workflow_runs, check_for_backend(diesel::pg::Pg))]
pub struct WorkflowRunRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub request_id: Option<Uuid>,
    pub status: String,
    pub input: String,
    pub overrides: serde_json::Value,
    pub plan: serde_json::Value,
    pub steps: serde_json::Value,
    pub output: String,
    pub error: String,
    pub created_by: String,
    pub attempts: i32,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub deadline: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = workflow_runs)]
pub struct NewWorkflowRun {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub request_id: Option<Uuid>,
    pub status: &'static str,
    pub input: String,
    pub overrides: serde_json::Value,
    pub plan: serde_json::Value,
    pub created_by: String,
    pub attempts: i32,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<DateTime<Utc>>,
    pub deadline: DateTime<Utc>,
}

/// The overrides a run applies to every step, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OverridesJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// One started step of a run, as stored in `steps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub index: i32,
    #[serde(default)]
    pub name: String,
    pub agent_id: Uuid,
    /// A run status name: running, succeeded, failed or cancelled.
    pub status: String,
    #[serde(default)]
    pub input: String,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub prompt_tokens: i32,
    #[serde(default)]
    pub completion_tokens: i32,
    /// A `FinishReason` number.
    #[serde(default)]
    pub finish_reason: i32,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: String,
}

impl From<&StepRecord> for pb::WorkflowRunStep {
    fn from(step: &StepRecord) -> Self {
        Self {
            index: step.index,
            name: step.name.clone(),
            agent_id: step.agent_id.to_string(),
            status: run_status_from_name(&step.status) as i32,
            input: step.input.clone(),
            output: step.output.clone(),
            prompt_tokens: step.prompt_tokens,
            completion_tokens: step.completion_tokens,
            finish_reason: step.finish_reason,
            start_time: Some(to_timestamp(step.started_at)),
            end_time: step.finished_at.map(to_timestamp),
            error: step.error.clone(),
        }
    }
}

impl WorkflowRunRow {
    pub fn plan(&self) -> Vec<StepJson> {
        serde_json::from_value(self.plan.clone()).unwrap_or_default()
    }

    pub fn steps(&self) -> Vec<StepRecord> {
        serde_json::from_value(self.steps.clone()).unwrap_or_default()
    }

    pub fn overrides(&self) -> OverridesJson {
        serde_json::from_value(self.overrides.clone()).unwrap_or_default()
    }

    pub fn is_finished(&self) -> bool {
        !RUN_UNFINISHED.contains(&self.status.as_str())
    }
}

impl From<&WorkflowRunRow> for pb::WorkflowRun {
    fn from(row: &WorkflowRunRow) -> Self {
        let overrides = row.overrides();
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            workflow_id: row.workflow_id.to_string(),
            status: run_status_from_name(&row.status) as i32,
            input: row.input.clone(),
            steps: row.steps().iter().map(pb::WorkflowRunStep::from).collect(),
            output: row.output.clone(),
            error: row.error.clone(),
            request_id: row.request_id.map(|id| id.to_string()).unwrap_or_default(),
            created_by: row.created_by.clone(),
            overrides: Some(pb::GenerationOverrides {
                max_tokens: overrides.max_tokens,
                temperature: overrides.temperature,
                stop: overrides.stop,
            }),
            create_time: Some(to_timestamp(row.created_at)),
            start_time: row.started_at.map(to_timestamp),
            end_time: row.finished_at.map(to_timestamp),
            update_time: Some(to_timestamp(row.updated_at)),
            attempts: row.attempts,
            deadline: Some(to_timestamp(row.deadline)),
        }
    }
}

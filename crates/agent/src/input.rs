//! Validation of the agent service's requests; every error names its field.

use std::collections::BTreeMap;

use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask::FieldPaths;
use agentic_platform::json;
use agentic_platform::validate::{self, Violations};
use agentic_proto::agent::v1 as pb;
use uuid::Uuid;

use crate::model::{
    AgentChanges, McpServerChanges, StepJson, ToolJson, agent_status_name, retrieval_mode_name,
    transport_name,
};
use crate::run::chat::{ChatMessage, Role};

pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_DESCRIPTION_LEN: usize = 2_000;
pub(crate) const MAX_MODEL_LEN: usize = 100;
pub(crate) const MAX_PROMPT_LEN: usize = 100_000;
/// Largest `config` (and tool input schema), encoded.
pub(crate) const MAX_CONFIG_BYTES: usize = 64 * 1024;
pub(crate) const MAX_TOOL_REFS: usize = 32;
pub(crate) const DEFAULT_TEMPERATURE: f32 = 0.7;
pub(crate) const DEFAULT_MAX_TOKENS: i32 = 2048;
pub(crate) const MAX_MAX_TOKENS: i32 = 1_000_000;
pub(crate) const MAX_BATCH_GET: usize = 100;

pub(crate) const MAX_URL_LEN: usize = 2_048;
pub(crate) const MAX_COMMAND_LEN: usize = 1_000;
pub(crate) const MAX_ARGS: usize = 64;
pub(crate) const MAX_HEADERS: usize = 32;
pub(crate) const MAX_HEADER_NAME_LEN: usize = 100;
pub(crate) const MAX_HEADER_VALUE_LEN: usize = 8_192;
pub(crate) const MAX_TOOLS: usize = 256;

pub(crate) const MAX_STEPS: usize = 50;
pub(crate) const MAX_TEMPLATE_LEN: usize = 20_000;

// ---- shared ----

pub(crate) fn name(field: &str, value: &str) -> Result<String> {
    validate::text(field, value, 1, MAX_NAME_LEN)
}

pub(crate) fn description(field: &str, value: &str) -> Result<String> {
    validate::multiline(field, value, MAX_DESCRIPTION_LEN)
}

/// The update time an `etag` names; empty means "whatever the current one".
pub(crate) fn etag(field: &str, value: &str) -> Result<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "is not an etag this service issued"))
}

// ---- agents ----

pub(crate) fn slug(field: &str, value: &str) -> Result<String> {
    validate::identifier(field, value, 3, 63, &['-'])
}

/// A model name: letters, digits and `-._:/@`, as model ids are written.
pub(crate) fn model(field: &str, value: &str) -> Result<String> {
    let model = validate::text(field, value, 1, MAX_MODEL_LEN)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._:/@".contains(c);
    if !model.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            "must be letters, digits or \"-._:/@\"",
        ));
    }
    Ok(model)
}

/// A model to filter by: empty means any.
pub(crate) fn optional_model(field: &str, value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    model(field, value).map(Some)
}

pub(crate) fn system_prompt(field: &str, value: &str) -> Result<String> {
    validate::multiline(field, value, MAX_PROMPT_LEN)
}

/// 0 to 2; `default` when unset (`None`: unset is an error).
pub(crate) fn temperature(field: &str, value: Option<f32>, default: Option<f32>) -> Result<f32> {
    let value = value
        .or(default)
        .ok_or_else(|| Error::invalid(field, "is required"))?;
    if !(0.0..=2.0).contains(&value) {
        return Err(Error::invalid(field, "must be from 0 to 2"));
    }
    Ok(value)
}

pub(crate) fn max_tokens(field: &str, value: Option<i32>, default: Option<i32>) -> Result<i32> {
    let value = value
        .or(default)
        .ok_or_else(|| Error::invalid(field, "is required"))?;
    if !(1..=MAX_MAX_TOKENS).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be from 1 to {MAX_MAX_TOKENS}"),
        ));
    }
    Ok(value)
}

/// A JSON object (an agent's config, a tool's input schema) of at most
/// [`MAX_CONFIG_BYTES`] encoded.
pub(crate) fn config(
    field: &str,
    value: Option<&prost_types::Struct>,
) -> Result<serde_json::Value> {
    json::from_struct_within(field, value, MAX_CONFIG_BYTES)
}

/// Distinct MCP server ids, in the order given.
pub(crate) fn mcp_server_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>> {
    if values.len() > MAX_TOOL_REFS {
        return Err(Error::invalid(
            field,
            format!("must hold at most {MAX_TOOL_REFS} ids"),
        ));
    }
    validate::distinct_ids(field, values)
}

/// The ids of a BatchGetAgentsRequest: 1 to [`MAX_BATCH_GET`], duplicates dropped.
pub(crate) fn batch_get_ids(values: &[String]) -> Result<Vec<Uuid>> {
    if values.is_empty() || values.len() > MAX_BATCH_GET {
        return Err(Error::invalid(
            "ids",
            format!("must hold 1 to {MAX_BATCH_GET} ids"),
        ));
    }
    validate::distinct_ids("ids", values)
}

/// A status, if one is given (unspecified is `None`).
pub(crate) fn optional_agent_status(field: &str, value: i32) -> Result<Option<&'static str>> {
    validate::enum_name(field, value, "status", agent_status_name)
}

/// A status; unspecified means `default`.
pub(crate) fn agent_status(
    field: &str,
    value: i32,
    default: Option<pb::AgentStatus>,
) -> Result<&'static str> {
    optional_agent_status(field, value)?
        .or_else(|| default.and_then(agent_status_name))
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// A validated agent for CreateAgent.
#[derive(Debug)]
pub(crate) struct AgentInput {
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) description: String,
    pub(crate) model: String,
    pub(crate) system_prompt: String,
    pub(crate) temperature: f32,
    pub(crate) max_tokens: i32,
    pub(crate) config: serde_json::Value,
    pub(crate) mcp_server_ids: Vec<Uuid>,
    pub(crate) status: &'static str,
    pub(crate) collection_ids: Vec<Uuid>,
    pub(crate) retrieval: RetrievalInput,
}

/// How an agent's collections are searched.
#[derive(Debug)]
pub(crate) struct RetrievalInput {
    pub(crate) top_k: i32,
    pub(crate) min_score: Option<f32>,
    pub(crate) mode: &'static str,
}

pub(crate) fn new_agent(agent: &pb::Agent) -> Result<AgentInput> {
    let (
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
        collection_ids,
        retrieval,
    ) = validate::all((
        name("agent.name", &agent.name),
        slug("agent.slug", &agent.slug),
        description("agent.description", &agent.description),
        model("agent.model", &agent.model),
        system_prompt("agent.system_prompt", &agent.system_prompt),
        temperature(
            "agent.temperature",
            agent.temperature,
            Some(DEFAULT_TEMPERATURE),
        ),
        max_tokens(
            "agent.max_tokens",
            agent.max_tokens,
            Some(DEFAULT_MAX_TOKENS),
        ),
        config("agent.config", agent.config.as_ref()),
        mcp_server_ids("agent.mcp_server_ids", &agent.mcp_server_ids),
        agent_status("agent.status", agent.status, Some(pb::AgentStatus::Active)),
        collection_ids("agent.collection_ids", &agent.collection_ids),
        retrieval("agent.retrieval", agent.retrieval.as_ref()),
    ))?;
    Ok(AgentInput {
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
        collection_ids,
        retrieval,
    })
}

/// The columns an agent update writes, from the fields its mask names (the others are
/// neither checked nor written).
pub(crate) fn agent_changes(agent: &pb::Agent, mask: &FieldPaths) -> Result<AgentChanges> {
    let mut violations = Violations::new();
    let mut changes = AgentChanges::default();
    if mask.includes("name") {
        changes.name = violations.check(name("agent.name", &agent.name));
    }
    if mask.includes("slug") {
        changes.slug = violations.check(slug("agent.slug", &agent.slug));
    }
    if mask.includes("description") {
        changes.description =
            violations.check(description("agent.description", &agent.description));
    }
    if mask.includes("model") {
        changes.model = violations.check(model("agent.model", &agent.model));
    }
    if mask.includes("system_prompt") {
        changes.system_prompt =
            violations.check(system_prompt("agent.system_prompt", &agent.system_prompt));
    }
    if mask.includes("temperature") {
        changes.temperature =
            violations.check(temperature("agent.temperature", agent.temperature, None));
    }
    if mask.includes("max_tokens") {
        changes.max_tokens =
            violations.check(max_tokens("agent.max_tokens", agent.max_tokens, None));
    }
    if mask.includes("config") {
        changes.config = violations.check(config("agent.config", agent.config.as_ref()));
    }
    if mask.includes("mcp_server_ids") {
        changes.mcp_server_ids = violations.check(mcp_server_ids(
            "agent.mcp_server_ids",
            &agent.mcp_server_ids,
        ));
    }
    if mask.includes("status") {
        changes.status = violations
            .check(agent_status("agent.status", agent.status, None))
            .map(str::to_owned);
    }
    if mask.includes("collection_ids") {
        changes.collection_ids = violations.check(collection_ids(
            "agent.collection_ids",
            &agent.collection_ids,
        ));
    }
    if mask.includes("retrieval")
        && let Some(retrieval) =
            violations.check(retrieval("agent.retrieval", agent.retrieval.as_ref()))
    {
        changes.retrieval_top_k = Some(retrieval.top_k);
        changes.retrieval_min_score = Some(retrieval.min_score);
        changes.retrieval_mode = Some(retrieval.mode.to_owned());
    }
    violations.into_result()?;
    Ok(changes)
}

/// Collections an agent answers from at most.
pub(crate) const MAX_COLLECTIONS: usize = 16;
/// The most chunks retrieval puts in a prompt, and the default.
pub(crate) const MAX_RETRIEVAL_TOP_K: i32 = 50;
pub(crate) const DEFAULT_RETRIEVAL_TOP_K: i32 = 5;

/// Up to [`MAX_COLLECTIONS`] distinct collection ids (that they exist is checked with the
/// RAG service).
pub(crate) fn collection_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>> {
    if values.len() > MAX_COLLECTIONS {
        return Err(Error::invalid(
            field,
            format!("must hold at most {MAX_COLLECTIONS} ids"),
        ));
    }
    let ids = values
        .iter()
        .enumerate()
        .map(|(index, value)| validate::id(&format!("{field}[{index}]"), value))
        .collect::<Result<Vec<_>>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(index) = ids.iter().position(|id| !seen.insert(*id)) {
        return Err(Error::invalid(
            format!("{field}[{index}]"),
            "repeats an earlier id",
        ));
    }
    Ok(ids)
}

/// Retrieval settings: top_k 1 to 50 (5), a finite min_score if any, dense or hybrid.
pub(crate) fn retrieval(field: &str, value: Option<&pb::Retrieval>) -> Result<RetrievalInput> {
    let value = value.copied().unwrap_or_default();
    let top_k = value.top_k.unwrap_or(DEFAULT_RETRIEVAL_TOP_K);
    let mut violations = Violations::new();
    if !(1..=MAX_RETRIEVAL_TOP_K).contains(&top_k) {
        violations.add(
            format!("{field}.top_k"),
            format!("must be from 1 to {MAX_RETRIEVAL_TOP_K}"),
        );
    }
    if value.min_score.is_some_and(|score| !score.is_finite()) {
        violations.add(format!("{field}.min_score"), "must be a finite number");
    }
    let mode = match pb::RetrievalMode::try_from(value.mode) {
        Ok(mode) => Some(retrieval_mode_name(mode)),
        Err(_) => {
            violations.add(format!("{field}.mode"), "must be DENSE or HYBRID");
            None
        }
    };
    violations.into_result()?;
    Ok(RetrievalInput {
        top_k,
        min_score: value.min_score,
        mode: mode.unwrap_or(crate::model::HYBRID),
    })
}

// ---- MCP servers ----

pub(crate) fn transport(field: &str, value: i32) -> Result<&'static str> {
    validate::required(
        field,
        validate::enum_name(field, value, "transport", transport_name),
    )
}

/// An http(s) URL, or empty.
pub(crate) fn url(field: &str, value: &str) -> Result<String> {
    let url = validate::text(field, value, 0, MAX_URL_LEN)?;
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !url.is_empty() && (!scheme_ok || url.chars().any(char::is_whitespace)) {
        return Err(Error::invalid(field, "must be an http:// or https:// URL"));
    }
    validate::visible(field, &url)?;
    Ok(url)
}

pub(crate) fn command(field: &str, value: &str) -> Result<String> {
    validate::text(field, value, 0, MAX_COMMAND_LEN)
}

pub(crate) fn args(field: &str, values: &[String]) -> Result<Vec<String>> {
    if values.len() > MAX_ARGS {
        return Err(Error::invalid(
            field,
            format!("must hold at most {MAX_ARGS} arguments"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let field = format!("{field}[{index}]");
            if value.chars().count() > MAX_COMMAND_LEN {
                return Err(Error::invalid(
                    field,
                    format!("must be at most {MAX_COMMAND_LEN} characters"),
                ));
            }
            validate::plain(&field, value)?;
            Ok(value.clone())
        })
        .collect()
}

/// Header names (HTTP token characters) and values (no line breaks), sorted by name.
pub(crate) fn headers(
    field: &str,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    if values.len() > MAX_HEADERS {
        return Err(Error::invalid(
            field,
            format!("must hold at most {MAX_HEADERS} headers"),
        ));
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut headers = BTreeMap::new();
    for (name, value) in values {
        let shown: String = name.chars().take(40).collect();
        let name_field = format!("{field}[{shown:?}]");
        if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.chars().all(token) {
            return Err(Error::invalid(
                name_field,
                format!("header names are 1 to {MAX_HEADER_NAME_LEN} token characters"),
            ));
        }
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(Error::invalid(
                name_field,
                format!("must be at most {MAX_HEADER_VALUE_LEN} bytes"),
            ));
        }
        validate::plain(&name_field, value)?;
        headers.insert(name.to_ascii_lowercase(), value.clone());
    }
    Ok(headers)
}

pub(crate) fn tools(field: &str, values: &[pb::McpTool]) -> Result<serde_json::Value> {
    if values.len() > MAX_TOOLS {
        return Err(Error::invalid(
            field,
            format!("must hold at most {MAX_TOOLS} tools"),
        ));
    }
    let mut tools = Vec::with_capacity(values.len());
    for (index, tool) in values.iter().enumerate() {
        tools.push(ToolJson {
            name: validate::text(
                &format!("{field}[{index}].name"),
                &tool.name,
                1,
                MAX_NAME_LEN,
            )?,
            description: validate::multiline(
                &format!("{field}[{index}].description"),
                &tool.description,
                MAX_DESCRIPTION_LEN,
            )?,
            input_schema: config(
                &format!("{field}[{index}].input_schema"),
                tool.input_schema.as_ref(),
            )?,
        });
    }
    serde_json::to_value(tools).map_err(Error::internal)
}

/// Checks that a server's endpoint fits its transport: a URL for the HTTP transports,
/// a command for stdio, and not the other.
pub(crate) fn endpoint(transport: &str, url: &str, command: &str, args: &[String]) -> Result<()> {
    if transport == "stdio" {
        if command.is_empty() {
            return Err(Error::invalid(
                "mcp_server.command",
                "is required for the stdio transport",
            ));
        }
        if !url.is_empty() {
            return Err(Error::invalid(
                "mcp_server.url",
                "must be empty for the stdio transport",
            ));
        }
    } else {
        if url.is_empty() {
            return Err(Error::invalid(
                "mcp_server.url",
                "is required for the HTTP transports",
            ));
        }
        if !command.is_empty() || !args.is_empty() {
            return Err(Error::invalid(
                "mcp_server.command",
                "command and args are for the stdio transport only",
            ));
        }
    }
    Ok(())
}

/// A validated server for CreateMcpServer.
pub(crate) struct McpServerInput {
    pub(crate) name: String,
    pub(crate) transport: &'static str,
    pub(crate) url: String,
    pub(crate) command: String,
    pub(crate) args: Vec<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) tools: serde_json::Value,
}

pub(crate) fn new_mcp_server(server: &pb::McpServer) -> Result<McpServerInput> {
    let (name, transport, url, command, args, headers, tools) = validate::all((
        name("mcp_server.name", &server.name),
        transport("mcp_server.transport", server.transport),
        url("mcp_server.url", &server.url),
        command("mcp_server.command", &server.command),
        args("mcp_server.args", &server.args),
        headers("mcp_server.headers", &server.headers),
        tools("mcp_server.tools", &server.tools),
    ))?;
    endpoint(transport, &url, &command, &args)?;
    Ok(McpServerInput {
        name,
        transport,
        url,
        command,
        args,
        headers,
        tools,
    })
}

/// What an MCP server update writes: the columns its mask names, and the new headers
/// (still to be sealed) when it names them.
pub(crate) struct McpServerUpdate {
    pub(crate) changes: McpServerChanges,
    pub(crate) headers: Option<BTreeMap<String, String>>,
}

pub(crate) fn mcp_server_update(
    server: &pb::McpServer,
    mask: &FieldPaths,
) -> Result<McpServerUpdate> {
    let mut violations = Violations::new();
    let mut changes = McpServerChanges::default();
    let mut new_headers = None;
    if mask.includes("name") {
        changes.name = violations.check(name("mcp_server.name", &server.name));
    }
    if mask.includes("transport") {
        changes.transport = violations
            .check(transport("mcp_server.transport", server.transport))
            .map(str::to_owned);
    }
    if mask.includes("url") {
        changes.url = violations.check(url("mcp_server.url", &server.url));
    }
    if mask.includes("command") {
        changes.command = violations.check(command("mcp_server.command", &server.command));
    }
    if mask.includes("args") {
        changes.args = violations.check(args("mcp_server.args", &server.args));
    }
    if mask.includes("headers") {
        new_headers = violations.check(headers("mcp_server.headers", &server.headers));
    }
    if mask.includes("enabled") {
        changes.enabled = Some(server.enabled);
    }
    if mask.includes("tools") {
        changes.tools = violations.check(tools("mcp_server.tools", &server.tools));
    }
    violations.into_result()?;
    Ok(McpServerUpdate {
        changes,
        headers: new_headers,
    })
}

// ---- workflows ----

pub(crate) fn steps(field: &str, values: &[pb::WorkflowStep]) -> Result<Vec<StepJson>> {
    if values.is_empty() || values.len() > MAX_STEPS {
        return Err(Error::invalid(
            field,
            format!("must hold 1 to {MAX_STEPS} steps"),
        ));
    }
    let mut violations = Violations::new();
    let mut steps = Vec::with_capacity(values.len());
    for (index, step) in values.iter().enumerate() {
        let name = violations.check(validate::text(
            &format!("{field}[{index}].name"),
            &step.name,
            0,
            MAX_NAME_LEN,
        ));
        let agent_id = violations.check(validate::id(
            &format!("{field}[{index}].agent_id"),
            &step.agent_id,
        ));
        let input_template = violations.check(validate::multiline(
            &format!("{field}[{index}].input_template"),
            &step.input_template,
            MAX_TEMPLATE_LEN,
        ));
        if let (Some(name), Some(agent_id), Some(input_template)) = (name, agent_id, input_template)
        {
            steps.push(StepJson {
                name,
                agent_id,
                input_template,
            });
        }
    }
    violations.into_result()?;
    Ok(steps)
}

/// A validated workflow for CreateWorkflow.
pub(crate) struct WorkflowInput {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) steps: Vec<StepJson>,
}

pub(crate) fn new_workflow(workflow: &pb::Workflow) -> Result<WorkflowInput> {
    let (name, description, steps) = validate::all((
        name("workflow.name", &workflow.name),
        description("workflow.description", &workflow.description),
        steps("workflow.steps", &workflow.steps),
    ))?;
    Ok(WorkflowInput {
        name,
        description,
        steps,
    })
}

/// What a workflow update writes: the fields its mask names.
#[derive(Default)]
pub(crate) struct WorkflowUpdate {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) steps: Option<Vec<StepJson>>,
}

pub(crate) fn workflow_update(
    workflow: &pb::Workflow,
    mask: &FieldPaths,
) -> Result<WorkflowUpdate> {
    let mut violations = Violations::new();
    let mut update = WorkflowUpdate::default();
    if mask.includes("name") {
        update.name = violations.check(name("workflow.name", &workflow.name));
    }
    if mask.includes("description") {
        update.description =
            violations.check(description("workflow.description", &workflow.description));
    }
    if mask.includes("steps") {
        update.steps = violations.check(steps("workflow.steps", &workflow.steps));
    }
    violations.into_result()?;
    Ok(update)
}

/// Turns of history RunAgent takes at most.
pub(crate) const MAX_HISTORY_TURNS: usize = 1_000;
/// Characters of a message or a turn.
pub(crate) const MAX_MESSAGE_LEN: usize = 100_000;

/// A checked RunAgentRequest.
pub(crate) struct RunInput {
    pub agent: Uuid,
    pub history: Vec<ChatMessage>,
    pub message: ChatMessage,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
}

pub(crate) fn run(request: &pb::RunAgentRequest) -> Result<RunInput> {
    let overrides = request.overrides.clone().unwrap_or_default();
    let (agent, history, message, ()) = validate::all((
        validate::id("agent_id", &request.agent_id),
        history(&request.history),
        validate::multiline("message", &request.message, MAX_MESSAGE_LEN).and_then(|m| {
            if m.trim().is_empty() {
                Err(Error::invalid("message", "is required"))
            } else {
                Ok(m)
            }
        }),
        validate::generation_overrides("overrides", &overrides),
    ))?;
    Ok(RunInput {
        agent,
        history,
        message: ChatMessage::new(Role::User, message),
        max_tokens: overrides.max_tokens,
        temperature: overrides.temperature,
        stop: overrides.stop,
    })
}

fn history(turns: &[pb::Turn]) -> Result<Vec<ChatMessage>> {
    if turns.len() > MAX_HISTORY_TURNS {
        return Err(Error::invalid(
            "history",
            format!("must hold at most {MAX_HISTORY_TURNS} turns"),
        ));
    }
    let mut violations = Violations::new();
    let mut out = Vec::with_capacity(turns.len());
    for (index, turn) in turns.iter().enumerate() {
        let role = match pb::TurnRole::try_from(turn.role) {
            Ok(pb::TurnRole::User) => Some(Role::User),
            Ok(pb::TurnRole::Assistant) => Some(Role::Assistant),
            Ok(pb::TurnRole::System) => Some(Role::System),
            Ok(pb::TurnRole::Tool) => Some(Role::Tool),
            _ => {
                violations.add(format!("history[{index}].role"), "is required");
                None
            }
        };
        let content = violations.check(validate::multiline(
            &format!("history[{index}].content"),
            &turn.content,
            MAX_MESSAGE_LEN,
        ));
        if let (Some(role), Some(content)) = (role, content) {
            out.push(ChatMessage::new(role, content));
        }
    }
    violations.into_result()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(error: Error) -> Vec<String> {
        let Error::InvalidArgument(violations) = error else {
            panic!("expected violations, got {error:?}");
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_bad_agent_reports_every_field() {
        let agent = pb::Agent {
            name: String::new(),
            slug: "No".into(),
            model: "gpt 4".into(),
            system_prompt: "nul\0".into(),
            temperature: Some(2.5),
            max_tokens: Some(0),
            mcp_server_ids: vec!["x".into()],
            status: 9,
            ..Default::default()
        };
        assert_eq!(
            fields(new_agent(&agent).unwrap_err()),
            [
                "agent.name",
                "agent.slug",
                "agent.model",
                "agent.system_prompt",
                "agent.temperature",
                "agent.max_tokens",
                "agent.mcp_server_ids[0]",
                "agent.status"
            ]
        );
    }

    #[test]
    fn defaults_fill_unset_numbers_and_status() {
        let agent = pb::Agent {
            name: "Helper".into(),
            slug: "helper".into(),
            model: "llama3.1:8b".into(),
            ..Default::default()
        };
        let input = new_agent(&agent).unwrap();
        assert_eq!(input.temperature, DEFAULT_TEMPERATURE);
        assert_eq!(input.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(input.status, "active");
        assert!(temperature("t", Some(f32::NAN), None).is_err());
    }

    #[test]
    fn endpoints_fit_their_transport() {
        assert!(endpoint("stdio", "", "npx", &[]).is_ok());
        assert!(endpoint("stdio", "http://x", "npx", &[]).is_err());
        assert!(endpoint("sse", "https://x", "", &[]).is_ok());
        assert!(endpoint("sse", "", "", &[]).is_err());
        assert!(url("u", "ftp://x").is_err());
        let mut bad = BTreeMap::new();
        bad.insert("X Bad".to_owned(), "v".to_owned());
        assert!(headers("h", &bad).is_err());
    }
}

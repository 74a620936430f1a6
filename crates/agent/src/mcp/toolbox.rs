//! An agent's tools for one answer: what the model is offered (the OpenAI `tools`
//! schema, from each tool's input schema), the arguments it sends checked against that
//! schema, and the calls run on the tools' servers. A server's session opens at its first
//! call and serves the whole answer.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use uuid::Uuid;

use super::McpArgs;
use super::session::{Endpoint, Failure, Session};
use crate::model::ToolJson;
use crate::run::chat::{ToolCall, ToolSpec};

/// The longest function name the OpenAI API takes.
const MAX_FUNCTION_NAME: usize = 64;

/// Characters of a tool's result given to the model at most.
pub const MAX_RESULT_CHARS: usize = 100_000;

/// One server of the agent, and its session once opened.
struct Server {
    endpoint: Endpoint,
    session: OnceCell<Result<Session, Failure>>,
}

/// One tool as offered to the model.
struct Tool {
    /// The name the model calls it by: the tool's own, unless two servers share it.
    offered: String,
    /// The name its server knows it by.
    name: String,
    server: usize,
    description: String,
    schema: serde_json::Value,
    /// None when the server's schema is not a valid JSON Schema: arguments go unchecked.
    validator: Option<jsonschema::Validator>,
}

/// A call the model asked for, matched to its tool and its arguments parsed, once: what
/// is streamed before the call runs and what runs.
#[derive(Debug)]
pub struct ToolRequest {
    pub call: ToolCall,
    /// The tool's name on its server, and the server (none for a tool the agent lacks).
    pub name: String,
    pub server: Option<Uuid>,
    /// The arguments as parsed (an empty object when they are not a JSON object).
    pub arguments: serde_json::Value,
    /// The tool's index in the toolbox.
    tool: Option<usize>,
    /// The arguments as the model wrote them, parsed, or why they are not JSON.
    parsed: Result<serde_json::Value, String>,
}

/// What one call came to.
#[derive(Debug)]
pub struct Outcome {
    pub request: ToolRequest,
    /// The tool's output, or why it failed; this is what the model gets.
    pub result: String,
    pub is_error: bool,
    pub duration: Duration,
}

pub struct Toolbox {
    servers: Vec<Server>,
    tools: Vec<Tool>,
    settings: McpArgs,
}

impl Toolbox {
    /// The tools of `servers` (as last discovered).
    pub fn new(servers: Vec<(Endpoint, Vec<ToolJson>)>, settings: &McpArgs) -> Self {
        let mut taken = HashSet::new();
        let mut tools = Vec::new();
        let mut endpoints = Vec::new();
        for (index, (endpoint, listed)) in servers.into_iter().enumerate() {
            for tool in listed {
                let offered = offered_name(&endpoint.name, &tool.name, &mut taken);
                let schema = match &tool.input_schema {
                    serde_json::Value::Object(_) => tool.input_schema.clone(),
                    _ => serde_json::json!({"type": "object", "properties": {}}),
                };
                let validator = match jsonschema::validator_for(&schema) {
                    Ok(validator) => Some(validator),
                    Err(error) => {
                        tracing::warn!(tool = %tool.name, %error, "an MCP tool's input schema is not valid; its arguments go unchecked");
                        None
                    }
                };
                tools.push(Tool {
                    offered,
                    name: tool.name,
                    server: index,
                    description: tool.description,
                    schema,
                    validator,
                });
            }
            endpoints.push(Server {
                endpoint,
                session: OnceCell::new(),
            });
        }
        Self {
            servers: endpoints,
            tools,
            settings: settings.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tools as the model is offered them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.offered.clone(),
                description: tool.description.clone(),
                parameters: tool.schema.clone(),
            })
            .collect()
    }

    /// `call` matched to its tool (by the name the model was offered) and its arguments
    /// parsed.
    pub fn request(&self, call: ToolCall) -> ToolRequest {
        let tool = self.tools.iter().position(|t| t.offered == call.name);
        let (server, name) = match tool.map(|index| &self.tools[index]) {
            Some(tool) => (
                Some(self.servers[tool.server].endpoint.id),
                tool.name.clone(),
            ),
            None => (None, call.name.clone()),
        };
        let parsed = if call.arguments.trim().is_empty() {
            Ok(serde_json::json!({}))
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| e.to_string())
        };
        let arguments = parsed
            .as_ref()
            .ok()
            .filter(|a| a.is_object())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        ToolRequest {
            call,
            name,
            server,
            arguments,
            tool,
            parsed,
        }
    }

    /// Runs one call: its arguments checked, then the tool on its server, within the tool
    /// timeout. Every failure becomes an error result for the model.
    pub async fn call(&self, request: ToolRequest) -> Outcome {
        let started = Instant::now();
        let result = match (
            request.tool.map(|index| &self.tools[index]),
            &request.parsed,
        ) {
            (None, _) => Err(format!("there is no tool named {}", request.call.name)),
            (Some(_), Err(error)) => Err(format!("arguments: not JSON: {error}")),
            (Some(tool), Ok(value)) => match check_arguments(tool, value) {
                Err(problem) => Err(problem),
                Ok(object) => self.run(tool, object).await,
            },
        };
        let (result, is_error) = match result {
            Ok(text) => (text, false),
            Err(reason) => (reason, true),
        };
        let outcome = if is_error { "error" } else { "ok" };
        metrics::counter!("mcp_tool_calls_total", "outcome" => outcome).increment(1);
        Outcome {
            request,
            result: result.chars().take(MAX_RESULT_CHARS).collect(),
            is_error,
            duration: started.elapsed(),
        }
    }

    async fn run(&self, tool: &Tool, arguments: rmcp::model::JsonObject) -> Result<String, String> {
        let server = &self.servers[tool.server];
        let timeout = self.settings.mcp_tool_timeout;
        let calling = async {
            let session = server
                .session
                .get_or_init(|| Session::open(&server.endpoint, &self.settings))
                .await
                .as_ref()
                .map_err(Failure::to_string)?;
            session.call(&tool.name, arguments).await
        };
        match tokio::time::timeout(timeout, calling).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the tool timed out after {}",
                humantime::format_duration(timeout)
            )),
        }
    }

    /// Ends the sessions opened for this answer.
    pub async fn close(self) {
        for server in self.servers {
            if let Some(Ok(session)) = server.session.into_inner() {
                session.close().await;
            }
        }
    }
}

/// The arguments as the object the tool takes, or every way they break its schema.
fn check_arguments(
    tool: &Tool,
    value: &serde_json::Value,
) -> Result<rmcp::model::JsonObject, String> {
    let serde_json::Value::Object(object) = value else {
        return Err("arguments: must be a JSON object".into());
    };
    if let Some(validator) = &tool.validator {
        let problems: Vec<String> = validator
            .iter_errors(value)
            .take(5)
            .map(|error| {
                let path = error.instance_path().to_string();
                if path.is_empty() {
                    format!("arguments: {error}")
                } else {
                    format!("arguments{path}: {error}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
    }
    Ok(object.clone())
}

/// A function name the model may use for `tool`: its own when free and valid, else with
/// its server's name in front, made unique.
fn offered_name(server: &str, tool: &str, taken: &mut HashSet<String>) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name: String = clean(tool).chars().take(MAX_FUNCTION_NAME).collect();
    if name.is_empty() || taken.contains(&name) {
        let prefixed = format!("{}__{}", clean(server), clean(tool));
        name = prefixed.chars().take(MAX_FUNCTION_NAME).collect();
    }
    let base = name.clone();
    let mut n = 2;
    while taken.contains(&name) {
        let suffix = format!("_{n}");
        name = base
            .chars()
            .take(MAX_FUNCTION_NAME - suffix.len())
            .collect::<String>()
            + &suffix;
        n += 1;
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_unique_and_valid() {
        let mut taken = HashSet::new();
        assert_eq!(offered_name("files", "read", &mut taken), "read");
        assert_eq!(offered_name("web", "read", &mut taken), "web__read");
        assert_eq!(offered_name("web", "read", &mut taken), "web__read_2");
        assert_eq!(offered_name("s", "a.b c", &mut taken), "a_b_c");
        let long = "x".repeat(100);
        assert_eq!(
            offered_name("s", &long, &mut taken).len(),
            MAX_FUNCTION_NAME
        );
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        });
        let tool = Tool {
            offered: "weather".into(),
            name: "weather".into(),
            server: 0,
            description: String::new(),
            validator: jsonschema::validator_for(&schema).ok(),
            schema,
        };
        assert!(check_arguments(&tool, &serde_json::json!({"city": "Oslo"})).is_ok());
        let missing = check_arguments(&tool, &serde_json::json!({})).unwrap_err();
        assert!(missing.contains("city"), "{missing}");
        let wrong = check_arguments(&tool, &serde_json::json!({"city": 3})).unwrap_err();
        assert!(wrong.starts_with("arguments/city"), "{wrong}");
        assert!(check_arguments(&tool, &serde_json::json!([1])).is_err());
    }
}

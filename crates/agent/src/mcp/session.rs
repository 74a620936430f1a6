//! One session with one MCP server: opened (transport, handshake) within the connect
//! timeout, then asked for its tools or to call one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use uuid::Uuid;

use super::McpArgs;
use crate::model::ToolJson;

/// Where a server is and how to reach it, with its headers unsealed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub name: String,
    /// `streamable_http`, `sse` or `stdio`, as stored.
    pub transport: String,
    pub url: String,
    pub command: String,
    pub args: Vec<String>,
    pub headers: BTreeMap<String, String>,
}

/// Why a server could not be used: said to the model, or in `discovery_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server cannot be reached, or broke the session.
    Unreachable(String),
    /// The operator does not allow it here (a stdio server without MCP_ALLOW_COMMANDS).
    NotAllowed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(reason) => write!(f, "the MCP server is unreachable: {reason}"),
            Failure::NotAllowed(reason) => f.write_str(reason),
        }
    }
}

/// An open session.
pub struct Session {
    client: RunningService<RoleClient, ClientConfig>,
}

impl Session {
    /// Connects to `endpoint` and completes the MCP handshake, within the connect timeout.
    pub async fn open(endpoint: &Endpoint, settings: &McpArgs) -> Result<Self, Failure> {
        let opening = async {
            match endpoint.transport.as_str() {
                "stdio" => {
                    if !settings.mcp_allow_commands {
                        return Err(Failure::NotAllowed(
                            "stdio MCP servers are not allowed here (MCP_ALLOW_COMMANDS=false)"
                                .into(),
                        ));
                    }
                    let mut command = tokio::process::Command::new(&endpoint.command);
                    command.args(&endpoint.args).envs(&endpoint.headers);
                    let process = TokioChildProcess::new(command)
                        .map_err(|e| Failure::Unreachable(format!("cannot start: {e}")))?;
                    ClientConfig::default()
                        .serve(process)
                        .await
                        .map_err(|e| Failure::Unreachable(e.to_string()))
                }
                "sse" => {
                    let headers = header_map(&endpoint.headers)?.into_iter().collect();
                    let transport = super::legacy_sse::connect(&endpoint.url, headers)
                        .await
                        .map_err(Failure::Unreachable)?;
                    ClientConfig::default()
                        .serve(transport)
                        .await
                        .map_err(|e| Failure::Unreachable(e.to_string()))
                }
                _ => {
                    let config =
                        StreamableHttpClientTransportConfig::with_uri(endpoint.url.as_str())
                            .custom_headers(header_map(&endpoint.headers)?);
                    let transport = StreamableHttpClientTransport::from_config(config);
                    ClientConfig::default()
                        .serve(transport)
                        .await
                        .map_err(|e| Failure::Unreachable(e.to_string()))
                }
            }
        };
        match tokio::time::timeout(settings.mcp_connect_timeout, opening).await {
            Ok(Ok(client)) => Ok(Self { client }),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {}",
                humantime::format_duration(settings.mcp_connect_timeout)
            ))),
        }
    }

    /// The server's tools (every page of `tools/list`).
    pub async fn tools(&self, timeout: Duration) -> Result<Vec<ToolJson>, Failure> {
        let listed = tokio::time::timeout(timeout, self.client.list_all_tools())
            .await
            .map_err(|_| Failure::Unreachable("tools/list timed out".into()))?
            .map_err(|e| Failure::Unreachable(format!("tools/list failed: {e}")))?;
        Ok(listed
            .into_iter()
            .map(|tool| ToolJson {
                name: tool.name.into_owned(),
                description: tool.description.map(|d| d.into_owned()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
            })
            .collect())
    }

    /// Calls `name` with `arguments`: the tool's text, or why it failed (an error the tool
    /// reported, a broken session).
    pub async fn call(&self, name: &str, arguments: JsonObject) -> Result<String, String> {
        let request = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        let result = self
            .client
            .call_tool(request)
            .await
            .map_err(|e| format!("the call failed: {e}"))?;
        let mut text: Vec<String> = result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.clone()))
            .collect();
        if text.is_empty()
            && let Some(structured) = &result.structured_content
        {
            text.push(structured.to_string());
        }
        let text = text.join("\n");
        if result.is_error == Some(true) {
            Err(if text.is_empty() {
                "the tool reported an error".into()
            } else {
                text
            })
        } else {
            Ok(text)
        }
    }

    /// Ends the session (the server may drop its state).
    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

/// The stored headers as HTTP headers; a name or value HTTP cannot carry is a failure
/// naming it (the value is never shown).
fn header_map(
    headers: &BTreeMap<String, String>,
) -> Result<HashMap<HeaderName, HeaderValue>, Failure> {
    headers
        .iter()
        .map(|(name, value)| {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| Failure::Unreachable(format!("header {name} is not a valid name")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| Failure::Unreachable(format!("header {name} has an invalid value")))?;
            Ok((header, value))
        })
        .collect()
}

//! An MCP server for the tests: the official SDK's server (`rmcp`) over streamable HTTP,
//! with tools that answer, check a header, fail and stall. It records every call's
//! arguments and the headers it came with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

/// The header the `secret` tool wants, and its value.
pub const SECRET_HEADER: &str = "x-tool-key";
pub const SECRET_VALUE: &str = "open-sesame";

/// How long the `slow` tool takes.
pub const SLOW_TOOL: Duration = Duration::from_secs(30);

/// One call the server got.
#[derive(Debug, Clone)]
pub struct Call {
    pub tool: String,
    pub arguments: serde_json::Value,
    /// The value of [`SECRET_HEADER`] it came with, if any.
    pub secret: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct WeatherRequest {
    /// The city.
    city: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

#[derive(Clone)]
struct Tools {
    calls: Arc<Mutex<Vec<Call>>>,
    tool_router: ToolRouter<Self>,
}

fn secret_of(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tool_router]
impl Tools {
    #[tool(description = "The weather in a city")]
    fn weather(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(request): Parameters<WeatherRequest>,
    ) -> String {
        self.record("weather", serde_json::json!({"city": request.city}), &parts);
        format!("sunny in {}", request.city)
    }

    #[tool(description = "Reads the secret; needs the agent's key header")]
    fn secret(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> CallToolResult {
        self.record("secret", serde_json::json!({}), &parts);
        if secret_of(&parts).as_deref() == Some(SECRET_VALUE) {
            CallToolResult::success(vec![ContentBlock::text("the secret is 42")])
        } else {
            CallToolResult::error(vec![ContentBlock::text("missing key header")])
        }
    }

    #[tool(description = "Always fails")]
    fn broken(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> CallToolResult {
        self.record("broken", serde_json::json!({}), &parts);
        CallToolResult::error(vec![ContentBlock::text("the tool broke")])
    }

    #[tool(description = "Takes a long time")]
    async fn slow(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(_): Parameters<Nothing>,
    ) -> String {
        self.record("slow", serde_json::json!({}), &parts);
        tokio::time::sleep(SLOW_TOOL).await;
        "finally".to_owned()
    }
}

impl Tools {
    fn record(&self, tool: &str, arguments: serde_json::Value, parts: &http::request::Parts) {
        self.calls.lock().unwrap().push(Call {
            tool: tool.to_owned(),
            arguments,
            secret: secret_of(parts),
        });
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The running MCP server; stops when dropped.
pub struct McpServer {
    /// Its streamable HTTP endpoint.
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: CancellationToken,
}

impl McpServer {
    pub async fn start() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let shared = calls.clone();
        let service: StreamableHttpService<Tools, LocalSessionManager> = StreamableHttpService::new(
            move || {
                Ok(Tools {
                    calls: shared.clone(),
                    tool_router: Tools::tool_router(),
                })
            },
            Default::default(),
            StreamableHttpServerConfig::default()
                .with_sse_keep_alive(None)
                .with_cancellation_token(stop.child_token()),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled_owned().await })
                .await;
        });
        Self { url, calls, stop }
    }

    /// Every tool call received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

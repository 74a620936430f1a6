//! An MCP server for the tests: the official SDK's server (`rmcp`) over streamable HTTP,
//! or over MCP's older HTTP with SSE (bridged here: the SDK no longer serves it), with
//! tools that answer, check a header, fail and stall. It records every call's arguments
//! and the headers it came with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::{SinkExt, StreamExt};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ClientJsonRpcMessage, ContentBlock, ServerCapabilities, ServerConfig,
    ServerJsonRpcMessage,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
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
    /// The secret header of the session, for transports that do not hand the tools the
    /// HTTP request (the SSE bridge).
    session_secret: Option<String>,
    tool_router: ToolRouter<Self>,
}

impl Tools {
    fn new(calls: Arc<Mutex<Vec<Call>>>, session_secret: Option<String>) -> Self {
        Self {
            calls,
            session_secret,
            tool_router: Self::tool_router(),
        }
    }

    /// The secret header the call came with.
    fn secret_of(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(SECRET_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| self.session_secret.clone())
    }
}

#[tool_router]
impl Tools {
    #[tool(description = "The weather in a city")]
    fn weather(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(request): Parameters<WeatherRequest>,
    ) -> String {
        self.record(
            "weather",
            serde_json::json!({"city": request.city}),
            &context,
        );
        format!("sunny in {}", request.city)
    }

    #[tool(description = "Reads the secret; needs the agent's key header")]
    fn secret(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(_): Parameters<Nothing>,
    ) -> CallToolResult {
        self.record("secret", serde_json::json!({}), &context);
        if self.secret_of(&context).as_deref() == Some(SECRET_VALUE) {
            CallToolResult::success(vec![ContentBlock::text("the secret is 42")])
        } else {
            CallToolResult::error(vec![ContentBlock::text("missing key header")])
        }
    }

    #[tool(description = "Always fails")]
    fn broken(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(_): Parameters<Nothing>,
    ) -> CallToolResult {
        self.record("broken", serde_json::json!({}), &context);
        CallToolResult::error(vec![ContentBlock::text("the tool broke")])
    }

    #[tool(description = "Takes a long time")]
    async fn slow(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(_): Parameters<Nothing>,
    ) -> String {
        self.record("slow", serde_json::json!({}), &context);
        tokio::time::sleep(SLOW_TOOL).await;
        "finally".to_owned()
    }
}

impl Tools {
    fn record(
        &self,
        tool: &str,
        arguments: serde_json::Value,
        context: &RequestContext<RoleServer>,
    ) {
        let secret = self.secret_of(context);
        self.calls.lock().unwrap().push(Call {
            tool: tool.to_owned(),
            arguments,
            secret,
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
            move || Ok(Tools::new(shared.clone(), None)),
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

    /// The same tools over MCP's older HTTP with SSE: `GET {url}` opens a session's event
    /// stream, whose `endpoint` event names where to POST its messages.
    pub async fn start_sse() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let bridge = SseBridge {
            calls: calls.clone(),
            sessions: Arc::new(Mutex::new(std::collections::HashMap::new())),
        };
        let router = axum::Router::new()
            .route("/sse", axum::routing::get(sse_session))
            .route("/message", axum::routing::post(sse_message))
            .with_state(bridge);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/sse", listener.local_addr().expect("address"));
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled_owned().await })
                .await;
        });
        Self { url, calls, stop }
    }

    /// Every tool call received, in order (not for a stdio server, a process of its own).
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The SSE bridge's sessions: where each one's POSTed messages go.
#[derive(Clone)]
struct SseBridge {
    calls: Arc<Mutex<Vec<Call>>>,
    sessions: Arc<
        Mutex<
            std::collections::HashMap<String, futures::channel::mpsc::Sender<ClientJsonRpcMessage>>,
        >,
    >,
}

/// `GET /sse`: a session of the tools server on channels; its messages leave as events.
async fn sse_session(
    axum::extract::State(bridge): axum::extract::State<SseBridge>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let id = uuid::Uuid::new_v4().to_string();
    let secret = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (to_server, from_client) = futures::channel::mpsc::channel::<ClientJsonRpcMessage>(16);
    let (to_client, from_server) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(16);
    bridge
        .sessions
        .lock()
        .unwrap()
        .insert(id.clone(), to_server);
    let tools = Tools::new(bridge.calls.clone(), secret);
    tokio::spawn(async move {
        if let Ok(running) = tools.serve((to_client, from_client)).await {
            let _ = running.waiting().await;
        }
    });
    let first = futures::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(format!(
            "event: endpoint\ndata: /message?session={id}\n\n"
        )))
    });
    let rest = from_server.map(|message| {
        let data = serde_json::to_string(&message).expect("a message");
        Ok(Bytes::from(format!("event: message\ndata: {data}\n\n")))
    });
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(first.chain(rest)))
        .expect("response")
}

/// `POST /message?session=…`: one message for that session.
async fn sse_message(
    axum::extract::State(bridge): axum::extract::State<SseBridge>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> axum::http::StatusCode {
    let session = query
        .as_deref()
        .and_then(|q| q.strip_prefix("session="))
        .unwrap_or_default()
        .to_owned();
    let Some(mut sender) = bridge.sessions.lock().unwrap().get(&session).cloned() else {
        return axum::http::StatusCode::NOT_FOUND;
    };
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(&body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    match sender.send(message).await {
        Ok(()) => axum::http::StatusCode::ACCEPTED,
        Err(_) => axum::http::StatusCode::GONE,
    }
}

/// Serves the tools on this process's stdin and stdout (MCP's stdio transport) until the
/// client goes away. The secret header comes as the environment variable of its name.
pub async fn serve_stdio() -> anyhow::Result<()> {
    let tools = Tools::new(
        Arc::new(Mutex::new(Vec::new())),
        std::env::var(SECRET_HEADER).ok(),
    );
    let running = tools.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

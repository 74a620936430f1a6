//! The tests' MCP server over stdio: what an operator's `command` would run.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    agentic_e2e::mcp::serve_stdio().await
}

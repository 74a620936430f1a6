//! Agents that act: MCP servers discovered and called for real (an `rmcp` server over
//! streamable HTTP), tool calls in the answer loop driven by a scripted OpenAI-compatible
//! provider, over real gRPC, PostgreSQL and Redis.

use agentic_e2e::chat::{AnswerSuite, ChatServer, FAKE_PREFIX, Reply, answer_of, finish, respond};
use agentic_e2e::conversation::Tenant;
use agentic_e2e::mcp::{McpServer, SECRET_HEADER, SECRET_VALUE};
use agentic_e2e::slug;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use tonic::Code;

/// An MCP server of the tenant at `url`, carrying the secret header.
async fn register(tenant: &mut Tenant, name: &str, url: &str) -> agent_pb::McpServer {
    register_over(tenant, name, url, agent_pb::McpTransport::StreamableHttp).await
}

async fn register_over(
    tenant: &mut Tenant,
    name: &str,
    url: &str,
    transport: agent_pb::McpTransport,
) -> agent_pb::McpServer {
    tenant
        .agents
        .create_mcp_server(agent_pb::CreateMcpServerRequest {
            mcp_server: Some(agent_pb::McpServer {
                name: name.to_owned(),
                transport: transport as i32,
                url: url.to_owned(),
                headers: [(SECRET_HEADER.to_owned(), SECRET_VALUE.to_owned())].into(),
                enabled: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create MCP server")
        .into_inner()
        .mcp_server
        .expect("server")
}

/// Gives the tenant's agent `servers`.
async fn equip(tenant: &mut Tenant, servers: &[&agent_pb::McpServer]) {
    tenant
        .agents
        .update_agent(agent_pb::UpdateAgentRequest {
            agent: Some(agent_pb::Agent {
                id: tenant.agent_id.clone(),
                mcp_server_ids: servers.iter().map(|s| s.id.clone()).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["mcp_server_ids".into()],
            }),
        })
        .await
        .expect("update agent");
}

fn tool_names(server: &agent_pb::McpServer) -> Vec<String> {
    let mut names: Vec<String> = server.tools.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_tools_are_discovered_on_create_and_on_refresh() {
    let mcp = McpServer::start().await;
    let answers = AnswerSuite::start(None, &[]).await;
    let (mut tenant, _) = answers.tenant(&slug("discover"), "fake/model", "").await;
    let server = register(&mut tenant, "tools", &mcp.url).await;
    assert_eq!(tool_names(&server), ["broken", "secret", "slow", "weather"]);
    assert!(
        server.discovery_error.is_empty(),
        "{}",
        server.discovery_error
    );
    assert!(server.discover_time.is_some());
    let weather = server.tools.iter().find(|t| t.name == "weather").unwrap();
    let schema = agentic_platform::json::from_struct("s", weather.input_schema.as_ref()).unwrap();
    assert_eq!(schema["properties"]["city"]["type"], "string", "{schema}");
    assert_eq!(weather.description, "The weather in a city");
    // Refresh asks again; the header values still never come back.
    let refreshed = tenant
        .agents
        .refresh_mcp_server_tools(agent_pb::RefreshMcpServerToolsRequest {
            id: server.id.clone(),
        })
        .await
        .expect("refresh")
        .into_inner()
        .mcp_server
        .unwrap();
    assert_eq!(tool_names(&refreshed), tool_names(&server));
    assert!(refreshed.headers.is_empty());
    assert_ne!(refreshed.etag, server.etag, "a discovery is a new version");

    // A server that cannot be reached: created, with the reason recorded; refresh is
    // UNAVAILABLE and keeps what was known.
    let dead = register(&mut tenant, "dead", "http://127.0.0.1:9/mcp").await;
    assert!(dead.tools.is_empty());
    assert!(
        dead.discovery_error.contains("unreachable"),
        "{}",
        dead.discovery_error
    );
    let refused = tenant
        .agents
        .refresh_mcp_server_tools(agent_pb::RefreshMcpServerToolsRequest {
            id: dead.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // A stdio server is never started where commands are not allowed.
    let stdio = tenant
        .agents
        .create_mcp_server(agent_pb::CreateMcpServerRequest {
            mcp_server: Some(agent_pb::McpServer {
                name: "local".into(),
                transport: agent_pb::McpTransport::Stdio as i32,
                command: "true".into(),
                enabled: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create stdio server")
        .into_inner()
        .mcp_server
        .unwrap();
    assert!(
        stdio.discovery_error.contains("MCP_ALLOW_COMMANDS"),
        "{}",
        stdio.discovery_error
    );
    let refused = tenant
        .agents
        .refresh_mcp_server_tools(agent_pb::RefreshMcpServerToolsRequest { id: stdio.id })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // Another tenant's server is not found.
    let (mut other, _) = answers
        .tenant(&slug("discover-other"), "fake/model", "")
        .await;
    let hidden = other
        .agents
        .refresh_mcp_server_tools(agent_pb::RefreshMcpServerToolsRequest { id: server.id })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn respond_runs_the_tools_the_model_asks_for_and_streams_calls_and_results() {
    let mcp = McpServer::start().await;
    let chat = ChatServer::start(vec![
        Reply::tools(&[
            ("weather", serde_json::json!({"city": "Oslo"})),
            ("secret", serde_json::json!({})),
        ]),
        Reply::answer(&["Sunny in Oslo", "; the secret is 42."]),
    ])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, conversation) = answers
        .tenant(
            &slug("tools"),
            &format!("{FAKE_PREFIX}gpt"),
            "Use your tools.",
        )
        .await;
    let server = register(&mut tenant, "tools", &mcp.url).await;
    equip(&mut tenant, &[&server]).await;

    let answer = answer_of(
        &mut tenant.conversations,
        respond(&conversation, "Weather in Oslo, and the secret?"),
    )
    .await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(
        answer.order,
        [
            "started",
            "tool_call",
            "tool_call",
            "tool_result",
            "tool_result",
            "delta",
            "delta",
            "done"
        ]
    );
    assert_eq!(answer.text(), "Sunny in Oslo; the secret is 42.");
    let done = answer.done.as_ref().unwrap();
    assert_eq!(finish(done), agent_pb::FinishReason::Stop);
    let calls: Vec<&str> = answer.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(calls, ["weather", "secret"]);
    assert!(
        answer
            .tool_calls
            .iter()
            .all(|c| c.mcp_server_id == server.id && c.round == 1)
    );
    let results: Vec<(&str, &str, bool)> = answer
        .tool_results
        .iter()
        .map(|r| (r.name.as_str(), r.result.as_str(), r.is_error))
        .collect();
    assert_eq!(
        results,
        [
            ("weather", "sunny in Oslo", false),
            ("secret", "the secret is 42", false)
        ]
    );

    // The server got the arguments, and the agent's sealed header on every call.
    let got = mcp.calls();
    assert_eq!(got.len(), 2, "{got:?}");
    let weather = got.iter().find(|c| c.tool == "weather").unwrap();
    assert_eq!(weather.arguments["city"], "Oslo");
    assert!(
        got.iter()
            .all(|c| c.secret.as_deref() == Some(SECRET_VALUE)),
        "{got:?}"
    );

    // The model was offered the tools, then given the calls and their results.
    let requests = chat.requests();
    assert_eq!(requests.len(), 2);
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered.len(), 4, "{offered:?}");
    assert_eq!(requests[0]["tools"][0]["type"], "function");
    let second = requests[1]["messages"].as_array().unwrap();
    let asked = second
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("the calls");
    assert_eq!(asked["tool_calls"][0]["function"]["name"], "weather");
    let replies: Vec<&serde_json::Value> = second.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["tool_call_id"], "call_0");
    assert_eq!(replies[0]["content"], "sunny in Oslo");

    // Stored: the question, the answer, then one tool message per call.
    let stored = tenant
        .conversations
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.clone(),
            page_size: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    let roles: Vec<i32> = stored.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            pb::MessageRole::User as i32,
            pb::MessageRole::Assistant as i32,
            pb::MessageRole::Tool as i32,
            pb::MessageRole::Tool as i32
        ]
    );
    let tool = stored[2].tool_call.as_ref().expect("the call");
    assert_eq!(tool.name, "weather");
    assert_eq!(tool.result, "sunny in Oslo");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_a_slow_a_misused_and_a_dead_tool_each_end_in_an_answer() {
    let mcp = McpServer::start().await;
    let doomed = McpServer::start().await;
    let chat = ChatServer::start(vec![
        Reply::tools(&[
            ("broken", serde_json::json!({})),
            ("slow", serde_json::json!({})),
            ("weather", serde_json::json!({"town": "Oslo"})),
            ("tools2__weather", serde_json::json!({"city": "Bergen"})),
        ]),
        Reply::answer(&["I could not use my tools."]),
    ])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &["--mcp-tool-timeout", "500ms"]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("faults"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let live = register(&mut tenant, "tools", &mcp.url).await;
    let dead = register(&mut tenant, "tools2", &doomed.url).await;
    equip(&mut tenant, &[&live, &dead]).await;
    drop(doomed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let answer = answer_of(&mut tenant.conversations, respond(&conversation, "go")).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.text(), "I could not use my tools.");
    assert_eq!(
        finish(answer.done.as_ref().unwrap()),
        agent_pb::FinishReason::Stop
    );
    let result = |name: &str| {
        answer
            .tool_results
            .iter()
            .find(|r| r.id == name)
            .unwrap_or_else(|| panic!("no result for {name}: {:?}", answer.tool_results))
    };
    assert!(result("call_0").is_error);
    assert_eq!(result("call_0").result, "the tool broke");
    assert!(result("call_1").is_error);
    assert!(
        result("call_1").result.contains("timed out"),
        "{}",
        result("call_1").result
    );
    assert!(result("call_2").is_error);
    assert!(
        result("call_2").result.contains("city"),
        "{}",
        result("call_2").result
    );
    assert!(result("call_3").is_error);
    assert!(
        result("call_3").result.contains("unreachable")
            || result("call_3").result.contains("failed"),
        "{}",
        result("call_3").result
    );
    // The model got every error as the tool's result.
    let requests = chat.requests();
    let replies: Vec<&serde_json::Value> = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[0]["content"], "the tool broke");
    // The misused tool was never called.
    assert!(mcp.calls().iter().all(|c| c.tool != "weather"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_rounds_stop_at_the_limit_and_the_model_answers_without_tools() {
    let mcp = McpServer::start().await;
    let chat = ChatServer::start(vec![Reply::tools(&[(
        "weather",
        serde_json::json!({"city": "Oslo"}),
    )])])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &["--mcp-max-tool-rounds", "3"]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("rounds"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let server = register(&mut tenant, "tools", &mcp.url).await;
    equip(&mut tenant, &[&server]).await;
    let answer = answer_of(&mut tenant.conversations, respond(&conversation, "loop")).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    assert_eq!(answer.tool_calls.len(), 3);
    let rounds: Vec<i32> = answer.tool_calls.iter().map(|c| c.round).collect();
    assert_eq!(rounds, [1, 2, 3]);
    let requests = chat.requests();
    assert_eq!(requests.len(), 4, "three rounds, then one without tools");
    assert!(requests[2].get("tools").is_some());
    assert!(
        requests[3].get("tools").is_none(),
        "the last round offers no tools"
    );
    assert_eq!(
        finish(answer.done.as_ref().unwrap()),
        agent_pb::FinishReason::Stop
    );
    assert_eq!(mcp.calls().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_over_http_with_sse_is_discovered_and_called() {
    let mcp = McpServer::start_sse().await;
    let chat = ChatServer::start(vec![
        Reply::tools(&[
            ("weather", serde_json::json!({"city": "Rome"})),
            ("secret", serde_json::json!({})),
        ]),
        Reply::answer(&["Done."]),
    ])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &[]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("sse"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let server = register_over(&mut tenant, "old", &mcp.url, agent_pb::McpTransport::Sse).await;
    assert!(
        server.discovery_error.is_empty(),
        "{}",
        server.discovery_error
    );
    assert_eq!(tool_names(&server), ["broken", "secret", "slow", "weather"]);
    equip(&mut tenant, &[&server]).await;
    let answer = answer_of(&mut tenant.conversations, respond(&conversation, "go")).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    let results: Vec<(&str, bool)> = answer
        .tool_results
        .iter()
        .map(|r| (r.result.as_str(), r.is_error))
        .collect();
    assert_eq!(
        results,
        [("sunny in Rome", false), ("the secret is 42", false)]
    );
    let got = mcp.calls();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|c| c.secret.as_deref() == Some(SECRET_VALUE))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_server_runs_where_commands_are_allowed() {
    let chat = ChatServer::start(vec![
        Reply::tools(&[
            ("weather", serde_json::json!({"city": "Paris"})),
            ("secret", serde_json::json!({})),
        ]),
        Reply::answer(&["Done."]),
    ])
    .await;
    let answers = AnswerSuite::start(Some(&chat), &["--mcp-allow-commands", "true"]).await;
    let (mut tenant, conversation) = answers
        .tenant(&slug("stdio"), &format!("{FAKE_PREFIX}gpt"), "")
        .await;
    let server = tenant
        .agents
        .create_mcp_server(agent_pb::CreateMcpServerRequest {
            mcp_server: Some(agent_pb::McpServer {
                name: "local".into(),
                transport: agent_pb::McpTransport::Stdio as i32,
                command: env!("CARGO_BIN_EXE_mcp-stdio-server").into(),
                headers: [(SECRET_HEADER.to_owned(), SECRET_VALUE.to_owned())].into(),
                enabled: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create stdio server")
        .into_inner()
        .mcp_server
        .unwrap();
    assert!(
        server.discovery_error.is_empty(),
        "{}",
        server.discovery_error
    );
    assert_eq!(tool_names(&server), ["broken", "secret", "slow", "weather"]);
    equip(&mut tenant, &[&server]).await;
    let answer = answer_of(&mut tenant.conversations, respond(&conversation, "go")).await;
    assert!(answer.error.is_none(), "{:?}", answer.error);
    let results: Vec<(&str, bool)> = answer
        .tool_results
        .iter()
        .map(|r| (r.result.as_str(), r.is_error))
        .collect();
    // The header reached the process as its environment.
    assert_eq!(
        results,
        [("sunny in Paris", false), ("the secret is 42", false)]
    );
}

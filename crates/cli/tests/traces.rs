//! Traces leave real processes: `agentic serve user|agent|conversation`, exporting over
//! OTLP to a receiver as Jaeger runs one. One CreateConversation, under the caller's own
//! `traceparent`, is one trace across three processes; a hung collector slows nothing.

use std::time::Duration;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{
    BlackHole, OtlpReceiver, ReceivedSpan, ServiceProcess, TestDatabase, admin_get, auth_args,
    create_tenant, grpc_channel,
};
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::user::v1 as user_pb;
use tonic::Request;
use tonic::metadata::MetadataValue;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_agentic");

/// The three services, exporting traces to `endpoint`.
struct Suite {
    _dbs: Vec<TestDatabase>,
    users: ServiceProcess,
    agents: ServiceProcess,
    conversations: ServiceProcess,
}

async fn suite(endpoint: &str, more: &[(&str, &str)]) -> Suite {
    let user_db = TestDatabase::create("user", agentic_user::UserApp::MIGRATIONS).await;
    let agent_db = TestDatabase::create("agent", agentic_agent::AgentApp::MIGRATIONS).await;
    let conversation_db = TestDatabase::create(
        "conversation",
        agentic_conversation::ConversationApp::MIGRATIONS,
    )
    .await;
    // Spans leave in batches every 200 ms, so the test need not wait five seconds.
    let mut otel = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("SECRETS_KEY", "a-secrets-key-of-at-least-thirty-two-bytes"),
    ];
    otel.extend_from_slice(more);
    let users = ServiceProcess::start_command(BIN, &["serve", "user"], &user_db.url, &otel).await;
    let agents =
        ServiceProcess::start_command(BIN, &["serve", "agent"], &agent_db.url, &otel).await;
    let (user_url, agent_url) = (
        format!("http://{}", users.addr),
        format!("http://{}", agents.addr),
    );
    let mut env = otel.clone();
    env.extend([
        ("USER_SERVICE_URL", user_url.as_str()),
        ("AGENT_SERVICE_URL", agent_url.as_str()),
    ]);
    let conversations =
        ServiceProcess::start_command(BIN, &["serve", "conversation"], &conversation_db.url, &env)
            .await;
    Suite {
        _dbs: vec![user_db, agent_db, conversation_db],
        users,
        agents,
        conversations,
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

/// A tenant with a user and an agent; returns the admin token and their ids.
async fn tenant(suite: &Suite, tokens: &Tokens) -> (String, String, String) {
    let agent = agent_pb::Agent {
        name: "traced".into(),
        slug: "traced-agent".into(),
        model: "m".into(),
        system_prompt: "a prompt never traced".into(),
        ..Default::default()
    };
    tenant_with(suite, tokens, agent).await
}

/// [`tenant`] with `agent` as the tenant's agent.
async fn tenant_with(
    suite: &Suite,
    tokens: &Tokens,
    agent: agent_pb::Agent,
) -> (String, String, String) {
    let tenant = create_tenant(
        grpc_channel(suite.users.addr).await.expect("user channel"),
        tokens,
        &format!("trace-{}", &Uuid::new_v4().simple().to_string()[..8]),
    )
    .await;
    let (admin, _) = tokens
        .issue("trace-admin", Some(tenant), roles::ADMIN, None)
        .expect("token");
    let mut users = user_pb::user_service_client::UserServiceClient::new(
        grpc_channel(suite.users.addr).await.expect("channel"),
    );
    let user = users
        .create_user(bearer(
            user_pb::CreateUserRequest {
                email: "traced@example.com".into(),
                display_name: "Traced".into(),
                password: "a password never traced".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("create user")
        .into_inner()
        .user
        .expect("user");
    let mut agents = agent_pb::agent_service_client::AgentServiceClient::new(
        grpc_channel(suite.agents.addr).await.expect("channel"),
    );
    let agent = agents
        .create_agent(bearer(
            agent_pb::CreateAgentRequest {
                agent: Some(agent),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("create agent")
        .into_inner()
        .agent
        .expect("agent");
    (admin, user.id, agent.id)
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name)
        .unwrap_or_else(|| panic!("no {name} span from {service} in {spans:#?}"))
}

#[tokio::test]
async fn one_create_conversation_is_one_trace_across_three_processes() {
    let receiver = OtlpReceiver::start().await;
    let suite = suite(&receiver.endpoint(), &[]).await;
    let tokens = Tokens::new(&auth_args()).expect("tokens");
    let (admin, user_id, agent_id) = tenant(&suite, &tokens).await;

    let trace_id = format!("{:032x}", Uuid::new_v4().as_u128());
    let caller_span = "00f067aa0ba902b7";
    let mut conversations =
        conversation_pb::conversation_service_client::ConversationServiceClient::new(
            grpc_channel(suite.conversations.addr)
                .await
                .expect("channel"),
        );
    let mut request = bearer(
        conversation_pb::CreateConversationRequest {
            agent_id: agent_id.clone(),
            user_id: user_id.clone(),
            title: "a title never traced".into(),
            ..Default::default()
        },
        &admin,
    );
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("traceparent"));
    conversations
        .create_conversation(request)
        .await
        .expect("create conversation");

    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            let ours = || spans.iter().filter(|s| s.trace_id == trace_id);
            // Each process sends its spans in batches of its own: wait for all of them.
            let server = |service: &str, method: &str| {
                ours().any(|s| s.service == service && s.kind == 2 && s.name.ends_with(method))
            };
            server("agentic-conversation", "/CreateConversation")
                && server("agentic-agent", "/GetAgent")
                && server("agentic-user", "/GetUser")
                && ours()
                    .filter(|s| s.kind == 3 && s.attributes.contains_key("rpc.method"))
                    .count()
                    >= 2
                && ours().any(|s| {
                    s.attributes.get("db.operation.name").map(String::as_str) == Some("INSERT")
                })
                && ours().any(|s| {
                    s.service == "agentic-agent" && s.attributes.contains_key("cache.kind")
                })
        })
        .await;
    let trace: Vec<ReceivedSpan> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();

    let server = find(
        &trace,
        "agentic-conversation",
        "agentic.conversation.v1.ConversationService/CreateConversation",
    );
    assert_eq!(
        server.parent_span_id, caller_span,
        "under the caller's span"
    );
    assert_eq!(server.kind, 2, "a SERVER span");
    for (callee, service, method) in [
        ("agentic-agent", "agentic.agent.v1.AgentService", "GetAgent"),
        ("agentic-user", "agentic.user.v1.UserService", "GetUser"),
    ] {
        let name = format!("{service}/{method}");
        let client = find(&trace, "agentic-conversation", &name);
        assert_eq!(client.kind, 3, "a CLIENT span");
        assert_eq!(client.parent_span_id, server.span_id);
        assert_eq!(client.attributes["rpc.system"], "grpc");
        assert_eq!(client.attributes["rpc.service"], service);
        assert_eq!(client.attributes["rpc.method"], method);
        assert_eq!(client.attributes["rpc.grpc.status_code"], "0");
        assert_eq!(client.attributes["server.address"], "127.0.0.1");
        let port = if callee == "agentic-agent" {
            suite.agents.addr.port()
        } else {
            suite.users.addr.port()
        };
        assert_eq!(client.attributes["server.port"], port.to_string());
        let callee_span = find(&trace, callee, &name);
        assert_eq!(callee_span.kind, 2);
        assert_eq!(
            callee_span.parent_span_id, client.span_id,
            "{callee} under the client span"
        );
    }

    // The conversation's row is written under the call: a CLIENT span per statement,
    // named by the database conventions, with no statement text or value.
    let insert = trace
        .iter()
        .find(|s| {
            s.service == "agentic-conversation"
                && s.attributes.get("db.operation.name").map(String::as_str) == Some("INSERT")
        })
        .unwrap_or_else(|| panic!("no INSERT statement span in {trace:#?}"));
    assert_eq!(insert.kind, 3, "a CLIENT span");
    assert_eq!(insert.attributes["db.system.name"], "postgresql");
    assert_eq!(
        insert.attributes["db.collection.name"],
        "conversations.conversations"
    );
    assert_eq!(insert.name, "INSERT conversations.conversations");
    let in_call = |span: &ReceivedSpan| {
        // Under the server span, directly or through other spans of the same process.
        let mut parent = span.parent_span_id.clone();
        while let Some(up) = trace.iter().find(|s| s.span_id == parent) {
            if up.span_id == server.span_id {
                return true;
            }
            parent = up.parent_span_id.clone();
        }
        false
    };
    assert!(in_call(insert), "the statement is part of the call");
    // The agent service looked the agent up in its cache: a span says which level
    // answered.
    let lookup = trace
        .iter()
        .find(|s| s.service == "agentic-agent" && s.attributes.contains_key("cache.kind"))
        .unwrap_or_else(|| panic!("no cache lookup span in {trace:#?}"));
    assert!(
        ["l1", "l2", "source"].contains(&lookup.attributes["cache.level"].as_str()),
        "{lookup:?}"
    );

    // A call that fails: the agent does not exist. The client span says so.
    let missing = Uuid::now_v7().to_string();
    let status = conversations
        .create_conversation(bearer(
            conversation_pb::CreateConversationRequest {
                agent_id: missing,
                user_id,
                title: "t".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect_err("no such agent");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            spans.iter().any(|s| {
                s.service == "agentic-conversation"
                    && s.kind == 3
                    && s.attributes.get("rpc.grpc.status_code").map(String::as_str) == Some("5")
            })
        })
        .await;
    let failed = spans
        .iter()
        .find(|s| {
            s.service == "agentic-conversation"
                && s.kind == 3
                && s.attributes.get("rpc.grpc.status_code").map(String::as_str) == Some("5")
        })
        .expect("a client span of the failed GetAgent");
    assert_eq!(failed.status_code, 2, "an error status");

    // No token, secret, password or content in any attribute of any span.
    let secret = auth_args().jwt_secret;
    for span in &spans {
        for (key, value) in &span.attributes {
            for forbidden in [
                admin.as_str(),
                secret.as_str(),
                "Bearer",
                "a password never traced",
                "a prompt never traced",
                "a title never traced",
                "traced@example.com",
            ] {
                assert!(!value.contains(forbidden), "{key}={value} in {}", span.name);
            }
        }
    }
}

#[tokio::test]
async fn a_hung_collector_costs_no_request_anything() {
    let hole = BlackHole::start().await;
    // A short export queue, so the calls below overflow it while the collector hangs.
    let suite = suite(&hole.endpoint(), &[("OTEL_BSP_MAX_QUEUE_SIZE", "64")]).await;
    let tokens = Tokens::new(&auth_args()).expect("tokens");
    let (admin, user_id, agent_id) = tenant(&suite, &tokens).await;
    let mut conversations =
        conversation_pb::conversation_service_client::ConversationServiceClient::new(
            grpc_channel(suite.conversations.addr)
                .await
                .expect("channel"),
        );
    // Enough calls to fill the export queue many times over while the collector hangs.
    let mut took = Vec::new();
    for i in 0..300 {
        let started = std::time::Instant::now();
        conversations
            .create_conversation(bearer(
                conversation_pb::CreateConversationRequest {
                    agent_id: agent_id.clone(),
                    user_id: user_id.clone(),
                    title: format!("c{i}"),
                    ..Default::default()
                },
                &admin,
            ))
            .await
            .unwrap_or_else(|status| panic!("call {i}: {status:?}"));
        took.push(started.elapsed());
    }

    // The spans that found the queue full were dropped and counted, in every process.
    for (name, process) in [
        ("conversation", &suite.conversations),
        ("agent", &suite.agents),
        ("user", &suite.users),
    ] {
        let (_, metrics) = admin_get(process.admin_addr, "/metrics").await;
        let dropped: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("otel_spans_dropped_total "))
            .unwrap_or_else(|| panic!("{name}: no otel_spans_dropped_total"))
            .trim()
            .parse()
            .expect("a number");
        assert!(dropped > 0.0, "{name}: no span dropped with the queue full");
    }

    // Calls made once the queue was full took no longer than the first ones: nothing
    // waited on the exporter. (A wait would be the exporter's timeout, seconds per call;
    // the bound is generous so a busy machine does not trip it.)
    let median = |calls: &[Duration]| {
        let mut sorted = calls.to_vec();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    let (early, late) = (median(&took[10..60]), median(&took[200..]));
    assert!(
        late <= early * 3 + Duration::from_millis(20),
        "calls slowed once spans were dropped: {early:?} then {late:?}"
    );
}

/// The repository's local chat model.
const LOCAL_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../.local/models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

#[tokio::test]
async fn an_answer_is_one_trace_with_its_prompt_and_model_spans() {
    let receiver = OtlpReceiver::start().await;
    let suite = suite(&receiver.endpoint(), &[("LOCAL_MODEL_PATH", LOCAL_MODEL)]).await;
    let tokens = Tokens::new(&auth_args()).expect("tokens");
    let local = agent_pb::Agent {
        name: "answers".into(),
        slug: "answers-agent".into(),
        model: "local/smollm2-135m-instruct".into(),
        temperature: Some(0.0),
        max_tokens: Some(8),
        ..Default::default()
    };
    let (admin, user_id, agent_id) = tenant_with(&suite, &tokens, local).await;
    let mut conversations =
        conversation_pb::conversation_service_client::ConversationServiceClient::new(
            grpc_channel(suite.conversations.addr)
                .await
                .expect("channel"),
        );
    let conversation = conversations
        .create_conversation(bearer(
            conversation_pb::CreateConversationRequest {
                agent_id,
                user_id,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("create conversation")
        .into_inner()
        .conversation
        .expect("conversation");
    let mut stream = conversations
        .respond(bearer(
            conversation_pb::RespondRequest {
                conversation_id: conversation.id,
                message: Some(conversation_pb::Message {
                    content: "Hello!".into(),
                    ..Default::default()
                }),
                overrides: None,
            },
            &admin,
        ))
        .await
        .expect("respond")
        .into_inner();
    while stream.message().await.expect("an answer").is_some() {}

    let spans = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            spans.iter().any(|s| s.name == "llm.generate")
                && spans.iter().any(|s| s.name.ends_with("/Respond"))
        })
        .await;
    let respond = spans
        .iter()
        .find(|s| s.service.ends_with("conversation") && s.name.ends_with("/Respond"))
        .unwrap_or_else(|| panic!("no Respond span in {spans:#?}"));
    for name in ["prompt.assemble", "llm.generate"] {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"));
        assert_eq!(
            span.trace_id, respond.trace_id,
            "{name} is in the Respond trace"
        );
        assert!(
            span.service.ends_with("agent"),
            "{name} comes from the agent service"
        );
    }
    let generate = spans
        .iter()
        .find(|s| s.name == "llm.generate")
        .expect("generate");
    assert_eq!(
        generate
            .attributes
            .get("gen_ai.request.model")
            .map(String::as_str),
        Some("local/smollm2-135m-instruct")
    );
}

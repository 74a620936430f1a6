//! The suite's own cost of an answer, over a provider that costs nothing; and health
//! checks while the local model is busy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::AuthArgs;
use agentic_platform::testsuite::Bearer;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::agent_service_client::AgentServiceClient;
use agentic_proto::conversation::v1 as pb;
use agentic_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use agentic_proto::user::v1 as user_pb;
use agentic_proto::user::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use axum::body::{Body, Bytes};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use uuid::Uuid;

/// Chunks the instant provider streams.
const CHUNKS: usize = 8;

/// History turns before each message.
const HISTORY: usize = 20;

/// The pause between making the fixtures and timing.
pub(crate) const SETTLE: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub(crate) struct OverheadArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    user_url: String,
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    agent_url: String,
    #[arg(long, default_value = "http://127.0.0.1:50053")]
    conversation_url: String,
    /// The instant provider, called directly for the baseline.
    #[arg(long, default_value = "http://127.0.0.1:27080")]
    provider_url: String,
    /// The model name the agent service sends to that provider.
    #[arg(long, default_value = "bench/instant")]
    model: String,
    /// Concurrent streams, comma-separated.
    #[arg(long, default_value = "1,64,512")]
    concurrency: String,
    /// Answers per target and concurrency.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    #[command(flatten)]
    auth: AuthArgs,
}

#[derive(clap::Args)]
pub(crate) struct HealthArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    user_url: String,
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    agent_url: String,
    /// How long each phase measures.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Callers keeping the local model busy (more than its capacity, so it never idles).
    #[arg(long, default_value_t = 4)]
    callers: usize,
    #[command(flatten)]
    auth: AuthArgs,
}

// ---- the instant provider ----

pub(crate) async fn fake_provider(addr: SocketAddr) -> anyhow::Result<()> {
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            let mut body = String::new();
            for i in 0..CHUNKS {
                let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": format!("w{i} ")}}]});
                body.push_str(&format!("data: {chunk}\n\n"));
            }
            let usage = serde_json::json!({
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": CHUNKS}
            });
            body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from(Bytes::from(body)))
                .expect("response")
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

// ---- fixtures ----

fn bearer(token: &str) -> Bearer {
    Bearer::new(Some(token))
}

pub(crate) async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())?.connect().await?)
}

/// A tenant with a user and an agent on `model`, and its admin's credentials.
pub(crate) struct Tenant {
    pub(crate) admin: Bearer,
    user_id: String,
    pub(crate) agent_id: String,
}

pub(crate) async fn tenant(
    tokens: &Tokens,
    user_url: &str,
    agent_url: &str,
    model: &str,
) -> anyhow::Result<Tenant> {
    let users = channel(user_url).await?;
    let (platform, _) = tokens.issue("agentic-llm-bench", None, roles::PLATFORM, None)?;
    let run = Uuid::now_v7().simple().to_string();
    let tenant = UserServiceClient::with_interceptor(users.clone(), bearer(&platform))
        .create_tenant(user_pb::CreateTenantRequest {
            name: "llm bench".into(),
            slug: format!("llm-{}", &run[..20]),
            request_id: String::new(),
        })
        .await
        .context("create a tenant")?
        .into_inner()
        .tenant
        .context("tenant")?;
    let tenant_id: Uuid = tenant.id.parse()?;
    let (admin, _) = tokens.issue("agentic-llm-bench", Some(tenant_id), roles::ADMIN, None)?;
    let admin = bearer(&admin);
    let user = UserServiceClient::with_interceptor(users, admin.clone())
        .create_user(user_pb::CreateUserRequest {
            email: "bench@llm.example".into(),
            display_name: "Bench".into(),
            ..Default::default()
        })
        .await
        .context("create a user")?
        .into_inner()
        .user
        .context("user")?;
    let agent = AgentServiceClient::with_interceptor(channel(agent_url).await?, admin.clone())
        .create_agent(agent_pb::CreateAgentRequest {
            agent: Some(agent_pb::Agent {
                name: "Bench".into(),
                slug: "bench".into(),
                model: model.to_owned(),
                system_prompt: "You are a helpful assistant.".into(),
                temperature: Some(0.0),
                max_tokens: Some(64),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .context("create an agent")?
        .into_inner()
        .agent
        .context("agent")?;
    Ok(Tenant {
        admin,
        user_id: user.id,
        agent_id: agent.id,
    })
}

fn history_turns() -> Vec<agent_pb::Turn> {
    (0..HISTORY)
        .map(|i| agent_pb::Turn {
            role: if i % 2 == 0 {
                agent_pb::TurnRole::User
            } else {
                agent_pb::TurnRole::Assistant
            } as i32,
            content: format!("Turn {i} of the conversation, a sentence of ordinary length."),
        })
        .collect()
}

/// `count` conversations, each with the twenty-message history.
async fn conversations(tenant: &Tenant, url: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let client =
        ConversationServiceClient::with_interceptor(channel(url).await?, tenant.admin.clone());
    let made = futures::stream::iter(0..count)
        .map(|_| {
            let mut client = client.clone();
            async move {
                let conversation = client
                    .create_conversation(pb::CreateConversationRequest {
                        agent_id: tenant.agent_id.clone(),
                        user_id: tenant.user_id.clone(),
                        title: "bench".into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .conversation
                    .context("conversation")?;
                let messages = history_turns()
                    .into_iter()
                    .map(|turn| pb::Message {
                        role: if turn.role == agent_pb::TurnRole::User as i32 {
                            pb::MessageRole::User
                        } else {
                            pb::MessageRole::Assistant
                        } as i32,
                        content: turn.content,
                        ..Default::default()
                    })
                    .collect();
                client
                    .append_messages(pb::AppendMessagesRequest {
                        conversation_id: conversation.id.clone(),
                        messages,
                    })
                    .await?;
                anyhow::Ok(conversation.id)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    made.into_iter().collect()
}

// ---- measuring ----

/// Runs `calls` calls of `call` with `concurrency` at once; the times to first token.
pub(crate) async fn measure<F, Fut>(
    calls: usize,
    concurrency: usize,
    call: F,
) -> anyhow::Result<Histogram<u64>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let results = futures::stream::iter(0..calls)
        .map(|index| {
            let histogram = histogram.clone();
            let call = call(index);
            async move {
                let first = call.await?;
                histogram.lock().await.record(first.as_micros() as u64)?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(Arc::try_unwrap(histogram)
        .expect("every call is done")
        .into_inner())
}

fn report(
    target: &str,
    concurrency: usize,
    histogram: &Histogram<u64>,
    baseline: Option<&Histogram<u64>>,
) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    let (p50, p99) = (
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
    );
    let mut line = serde_json::json!({
        "target": target,
        "concurrency": concurrency,
        "calls": histogram.len(),
        "ttft_p50_ms": ms(p50),
        "ttft_p99_ms": ms(p99),
    });
    if let Some(base) = baseline {
        line["overhead_p50_ms"] = (ms(p50) - ms(base.value_at_quantile(0.5))).into();
        line["overhead_p99_ms"] = (ms(p99) - ms(base.value_at_quantile(0.99))).into();
    }
    println!("{line}");
}

pub(crate) async fn overhead(args: OverheadArgs) -> anyhow::Result<()> {
    let tokens = Tokens::new(&args.auth)?;
    let tenant = tenant(&tokens, &args.user_url, &args.agent_url, &args.model).await?;
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .context("--concurrency is numbers, comma-separated")?;
    let http = reqwest::Client::new();
    let endpoint = format!(
        "{}/v1/chat/completions",
        args.provider_url.trim_end_matches('/')
    );
    let agents =
        AgentServiceClient::with_interceptor(channel(&args.agent_url).await?, tenant.admin.clone());
    let answers = ConversationServiceClient::with_interceptor(
        channel(&args.conversation_url).await?,
        tenant.admin.clone(),
    );
    let body = serde_json::json!({
        "model": "instant", "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string();
    for &concurrency in &levels {
        let pool = conversations(&tenant, &args.conversation_url, args.calls).await?;
        // Let the database finish what a thousand inserts leave it (WAL, autovacuum)
        // before anything is timed.
        tokio::time::sleep(SETTLE).await;
        // The provider alone: time to its first chunk.
        let provider = measure(args.calls, concurrency, |_| {
            let (http, endpoint, body) = (http.clone(), endpoint.clone(), body.clone());
            async move {
                let started = Instant::now();
                let response = http
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let mut stream = response.bytes_stream();
                stream.next().await.context("a first chunk")??;
                let first = started.elapsed();
                while stream.next().await.is_some() {}
                Ok(first)
            }
        })
        .await?;
        report("provider", concurrency, &provider, None);
        // RunAgent alone, with the twenty-turn history.
        let run = measure(args.calls, concurrency, |_| {
            let mut agents = agents.clone();
            let request = agent_pb::RunAgentRequest {
                agent_id: tenant.agent_id.clone(),
                history: history_turns(),
                message: "What comes next?".into(),
                overrides: None,
            };
            async move {
                let started = Instant::now();
                let mut stream = agents.run_agent(request).await?.into_inner();
                let mut first = None;
                while let Some(event) = stream.message().await? {
                    if let Some(agent_pb::run_agent_event::Event::Delta(_)) = event.event {
                        first.get_or_insert_with(|| started.elapsed());
                    }
                }
                first.context("no delta")
            }
        })
        .await?;
        report("run_agent", concurrency, &run, Some(&provider));
        // Respond: the message and the answer stored, the history read, RunAgent relayed.
        let respond = measure(args.calls, concurrency, |index| {
            let mut answers = answers.clone();
            let request = pb::RespondRequest {
                conversation_id: pool[index].clone(),
                message: Some(pb::Message {
                    content: "What comes next?".into(),
                    ..Default::default()
                }),
                overrides: None,
            };
            async move {
                let started = Instant::now();
                let mut stream = answers.respond(request).await?.into_inner();
                let mut first = None;
                while let Some(event) = stream.message().await? {
                    if let Some(pb::respond_event::Event::Delta(_)) = event.event {
                        first.get_or_insert_with(|| started.elapsed());
                    }
                }
                first.context("no delta")
            }
        })
        .await?;
        report("respond", concurrency, &respond, Some(&provider));
    }
    Ok(())
}

/// Health/Check latencies for `duration`, one call at a time.
async fn health_checks(url: &str, duration: Duration) -> anyhow::Result<Histogram<u64>> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel(url).await?);
    let mut histogram = Histogram::<u64>::new(3)?;
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let started = Instant::now();
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        histogram.record(started.elapsed().as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(histogram)
}

pub(crate) async fn health_under_load(args: HealthArgs) -> anyhow::Result<()> {
    let tokens = Tokens::new(&args.auth)?;
    let tenant = tenant(
        &tokens,
        &args.user_url,
        &args.agent_url,
        "local/smollm2-135m-instruct",
    )
    .await?;
    let idle = health_checks(&args.agent_url, args.duration).await?;
    report("health_idle", 1, &idle, None);
    let agents =
        AgentServiceClient::with_interceptor(channel(&args.agent_url).await?, tenant.admin.clone());
    let stop = stop_flag();
    let callers: Vec<_> = (0..args.callers)
        .map(|_| {
            let mut agents = agents.clone();
            let agent_id = tenant.agent_id.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tokens = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = agent_pb::RunAgentRequest {
                        agent_id: agent_id.clone(),
                        history: Vec::new(),
                        message: "Write a long story about a dragon who learns to cook.".into(),
                        overrides: None,
                    };
                    let Ok(response) = agents.run_agent(request).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let mut stream = response.into_inner();
                    while let Ok(Some(event)) = stream.message().await {
                        if let Some(agent_pb::run_agent_event::Event::Delta(_)) = event.event {
                            tokens += 1;
                        }
                    }
                }
                tokens
            })
        })
        .collect();
    // Let the model get going.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let busy = health_checks(&args.agent_url, args.duration).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut pieces = 0;
    for caller in callers {
        pieces += caller.await?;
    }
    report("health_while_generating", 1, &busy, Some(&idle));
    println!(
        "{}",
        serde_json::json!({
            "target": "generation_during_health",
            "pieces_per_s": pieces as f64 / started.elapsed().as_secs_f64(),
            "p99_ratio": busy.value_at_quantile(0.99) as f64 / idle.value_at_quantile(0.99).max(1) as f64,
        })
    );
    Ok(())
}

fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

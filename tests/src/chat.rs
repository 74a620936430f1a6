//! A scripted OpenAI-compatible chat server (real HTTP, server-sent events), and the
//! agent, user and conversation services wired to it and to the local model.
//!
//! Each request takes the next scripted [`Reply`] (the last one repeats); the server
//! records every request body it got, and when each answer stream was dropped (the
//! client closed the connection).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentic_platform::auth::roles;
use agentic_platform::testsuite::Options;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::conversation::v1 as pb;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::agent::{AgentFixture, agent, create_agent};
use crate::conversation::{Suite, Tenant, create_conversation, user_message};
use crate::rag::RagHarness;
use crate::{UserFixture, create_user};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Streams `pieces` with `gap` between them, then usage and `[DONE]`.
    Answer { pieces: Vec<String>, gap: Duration },
    /// Answers `status` with a JSON error (and `Retry-After` seconds, if given).
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Streams `pieces`, then breaks the connection.
    FailMidStream { pieces: Vec<String> },
    /// Streams `pieces`, then sends nothing more, holding the connection open.
    Stall { pieces: Vec<String> },
    /// Asks for tool calls: (id, function name, arguments as JSON text), each streamed
    /// in two pieces as OpenAI does, then `finish_reason: tool_calls`.
    ToolCalls(Vec<(String, String, String)>),
}

impl Reply {
    /// A round of tool calls of (function name, arguments as JSON).
    pub fn tools(calls: &[(&str, serde_json::Value)]) -> Self {
        Reply::ToolCalls(
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, arguments))| {
                    (
                        format!("call_{i}"),
                        (*name).to_owned(),
                        arguments.to_string(),
                    )
                })
                .collect(),
        )
    }

    /// An answer of `pieces` sent at once.
    pub fn answer(pieces: &[&str]) -> Self {
        Reply::Answer {
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
            gap: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<serde_json::Value>>,
    /// When each answer stream was dropped by the server (its client went away or the
    /// stream ended).
    dropped: Mutex<Vec<Instant>>,
}

/// The running fake provider.
pub struct ChatServer {
    pub url: String,
    shared: Arc<Shared>,
}

impl ChatServer {
    /// Starts the server with `script`.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let router = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self { url, shared }
    }

    /// Replaces the script.
    pub fn script(&self, script: Vec<Reply>) {
        *self.shared.script.lock().unwrap() = script.into();
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// When answer streams were dropped.
    pub fn dropped(&self) -> Vec<Instant> {
        self.shared.dropped.lock().unwrap().clone()
    }
}

/// Records the drop of an answer stream.
struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.dropped.lock().unwrap().push(Instant::now());
    }
}

fn chunk(content: &str) -> Bytes {
    let event = serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    Bytes::from(format!("data: {event}\n\n"))
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    shared.requests.lock().unwrap().push(request);
    let reply = {
        let mut script = shared.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    }
    .unwrap_or_else(|| Reply::answer(&["ok"]));
    let (pieces, gap, ending) = match reply {
        Reply::Status {
            status,
            retry_after,
        } => {
            let mut response = (
                StatusCode::from_u16(status).expect("status"),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"error":{"message":"scripted failure"}}"#,
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            return response;
        }
        Reply::ToolCalls(calls) => return tool_calls(calls),
        Reply::Answer { pieces, gap } => (pieces, gap, Ending::Done),
        Reply::FailMidStream { pieces } => (pieces, Duration::ZERO, Ending::Break),
        Reply::Stall { pieces } => (pieces, Duration::ZERO, Ending::Stall),
    };
    let count = pieces.len();
    let guard = DropGuard(shared.clone());
    let stream = futures::stream::iter(pieces)
        .then(move |piece| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(chunk(&piece))
        })
        .chain(futures::stream::once(async move {
            let _guard = &guard;
            match ending {
                Ending::Done => {
                    let usage = serde_json::json!({
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": count}
                    });
                    Ok(Bytes::from(format!("data: {usage}\n\ndata: [DONE]\n\n")))
                }
                Ending::Break => {
                    // Let the pieces reach the client before the connection breaks.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::other("scripted break"))
                }
                Ending::Stall => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        }));
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// A stream asking for `calls`: each call's name first, its arguments in two pieces.
fn tool_calls(calls: Vec<(String, String, String)>) -> Response {
    let mut events = String::new();
    let mut push = |delta: serde_json::Value, finish: serde_json::Value| {
        let event = serde_json::json!({
            "id": "chatcmpl-test", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        events.push_str(&format!("data: {event}\n\n"));
    };
    for (index, (id, name, arguments)) in calls.iter().enumerate() {
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        push(
            serde_json::json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": head}}]}),
            serde_json::Value::Null,
        );
        push(
            serde_json::json!({"tool_calls": [{"index": index, "function": {"arguments": tail}}]}),
            serde_json::Value::Null,
        );
    }
    push(serde_json::json!({}), serde_json::json!("tool_calls"));
    let usage =
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}});
    events.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(events))
        .expect("response")
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    Done,
    Break,
    Stall,
}

/// The user, agent and conversation services, the agent service answering models named
/// `fake/…` from `chat` (when given) and the local model.
pub struct AnswerSuite {
    pub suite: Suite,
    /// The RAG service, which holds agents' knowledge.
    pub rag: RagHarness,
}

/// The prefix of models the fake provider serves.
pub const FAKE_PREFIX: &str = "fake/";

impl AnswerSuite {
    pub async fn start(chat: Option<&ChatServer>, agent_flags: &[&str]) -> Self {
        let rag = RagHarness::start().await;
        let mut flags: Vec<String> = agent_flags.iter().map(|f| (*f).to_owned()).collect();
        flags.extend([
            "--rag-service-url".to_owned(),
            format!("http://{}", rag.service.addr),
        ]);
        if let Some(chat) = chat {
            flags.extend([
                "--chat-providers".to_owned(),
                format!("{FAKE_PREFIX}={}", chat.url),
            ]);
        }
        let agent_options = Options {
            service_flags: flags,
            ..Options::default()
        };
        Self {
            suite: Suite::start_with_agents(Options::default(), agent_options).await,
            rag,
        }
    }

    /// A tenant whose agent runs on `model` with `system_prompt`, and a conversation of
    /// its user with that agent.
    pub async fn tenant(&self, slug: &str, model: &str, system_prompt: &str) -> (Tenant, String) {
        self.tenant_with(slug, model, system_prompt, &[]).await
    }

    /// [`AnswerSuite::tenant`], the agent answering from `collections`.
    pub async fn tenant_with(
        &self,
        slug: &str,
        model: &str,
        system_prompt: &str,
        collections: &[String],
    ) -> (Tenant, String) {
        let (id, mut users) = self.suite.users.tenant(slug).await;
        let user = create_user(&mut users, &format!("{slug}@example.com")).await;
        let mut agents = self.suite.agents.client_as(id, roles::ADMIN).await;
        let mut new = agent(&format!("{slug}-agent"), model);
        new.system_prompt = system_prompt.to_owned();
        new.temperature = Some(0.0);
        new.collection_ids = collections.to_vec();
        let created = create_agent(&mut agents, new).await;
        let mut tenant = Tenant {
            id,
            users,
            agents,
            conversations: self.suite.conversation_client(id, roles::ADMIN).await,
            user_id: user.id,
            agent_id: created.id,
        };
        let conversation = create_conversation(&mut tenant, "answers").await.id;
        (tenant, conversation)
    }
}

/// A Respond request for `content` under a fresh message id.
pub fn respond(conversation: &str, content: &str) -> pb::RespondRequest {
    pb::RespondRequest {
        conversation_id: conversation.to_owned(),
        message: Some(user_message(content)),
        overrides: None,
    }
}

/// Everything one Respond stream carried: its events, and how it ended.
#[derive(Debug, Default)]
pub struct Answer {
    pub started: Option<pb::RespondStarted>,
    pub context: Option<agent_pb::RunAgentContext>,
    pub deltas: Vec<String>,
    pub done: Option<pb::RespondDone>,
    pub error: Option<tonic::Status>,
    pub tool_calls: Vec<agent_pb::ToolCallRequested>,
    pub tool_results: Vec<agent_pb::ToolResult>,
    /// Every event's kind, in order: started, context, delta, tool_call, tool_result, done.
    pub order: Vec<&'static str>,
}

impl Answer {
    pub fn text(&self) -> String {
        self.deltas.concat()
    }
}

/// Sends `request` and reads its stream to the end; panics if the call is refused.
pub async fn answer_of(
    client: &mut crate::conversation::ConversationClient,
    request: impl tonic::IntoRequest<pb::RespondRequest>,
) -> Answer {
    collect(client.respond(request).await.expect("respond").into_inner()).await
}

/// Reads a Respond stream to its end.
pub async fn collect(mut stream: tonic::Streaming<pb::RespondEvent>) -> Answer {
    let mut answer = Answer::default();
    loop {
        match stream.message().await {
            Ok(Some(event)) => match event.event {
                Some(pb::respond_event::Event::Started(started)) => {
                    answer.order.push("started");
                    answer.started = Some(started);
                }
                Some(pb::respond_event::Event::Context(context)) => {
                    answer.order.push("context");
                    answer.context = Some(context);
                }
                Some(pb::respond_event::Event::Delta(delta)) => {
                    answer.order.push("delta");
                    answer.deltas.push(delta);
                }
                Some(pb::respond_event::Event::Done(done)) => {
                    answer.order.push("done");
                    answer.done = Some(done);
                }
                Some(pb::respond_event::Event::ToolCall(call)) => {
                    answer.order.push("tool_call");
                    answer.tool_calls.push(call);
                }
                Some(pb::respond_event::Event::ToolResult(result)) => {
                    answer.order.push("tool_result");
                    answer.tool_results.push(result);
                }
                None => {}
            },
            Ok(None) => return answer,
            Err(status) => {
                answer.error = Some(status);
                return answer;
            }
        }
    }
}

/// The finish reason of `done`, as the enum.
pub fn finish(done: &pb::RespondDone) -> agent_pb::FinishReason {
    agent_pb::FinishReason::try_from(done.finish_reason).expect("a finish reason")
}

//! Respond: the user's message in, the agent's answer streamed out and stored.
//!
//! The message and an empty answer after it are appended together; the call that takes
//! the answer's lease asks the agent service to run the agent (RunAgent) on the history
//! before the message, relays the answer's pieces, and stores the answer when it ends,
//! however it ends: finished, cancelled by the caller, past the deadline, or cut by a
//! failing model (the last three marked incomplete by their finish reason). A retry of a
//! message already answered gets the stored answer; a call that finds another answering
//! the same message waits for its answer.

use std::time::{Duration, Instant};

use agentic_platform::auth::Caller;
use agentic_platform::cache::{Cache, CacheKind};
use agentic_platform::client::Credentials;
use agentic_platform::db::Pool;
use agentic_platform::error::{Error, Result};
use agentic_platform::request;
use agentic_proto::agent::v1 as agent_pb;
use agentic_proto::agent::v1::FinishReason;
use agentic_proto::conversation::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ConversationService;
use crate::input;
use crate::model::{MessageRow, NewMessage, finish_reason_name};
use crate::store::{self, Direction, Finished, Opened};

/// The stream Respond answers with.
pub(super) type RespondStream = ReceiverStream<Result<pb::RespondEvent, Status>>;

/// Messages before the new one handed to the agent at most; it keeps what fits its model.
const HISTORY_LIMIT: i64 = 200;

/// A call waiting for another's answer looks again this often.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// The lease outlives the call's deadline by this much, so a slow store still holds it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The answer is stored this long before the caller's deadline, so `done` still arrives.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The deadline of a Respond outside any request (tests calling the function).
const UNSCOPED_TIMEOUT: Duration = Duration::from_secs(60);

/// Events buffered for a slow reader.
const EVENTS_AHEAD: usize = 32;

type Events = mpsc::Sender<Result<pb::RespondEvent, Status>>;

/// The id of the answer to the message `question`: derived from it, so every retry of
/// the message finds the same answer.
fn answer_id(question: Uuid) -> Uuid {
    Uuid::new_v5(&question, b"answer")
}

pub(super) async fn respond(
    service: &ConversationService,
    request: Request<pb::RespondRequest>,
) -> Result<Response<RespondStream>, Status> {
    let received = Instant::now();
    let tenant = Caller::of(&request)?.member_tenant()?;
    let credentials = Credentials::of(&request)?;
    let input = input::respond(request.get_ref())?;
    let conversation = service
        .cached_conversation(tenant, input.conversation)
        .await?;
    if conversation.status == pb::ConversationStatus::Archived as i32 {
        return Err(Error::FailedPrecondition(
            "conversation_id: the conversation is archived".into(),
        )
        .into());
    }
    let left = request::remaining().unwrap_or(UNSCOPED_TIMEOUT);
    let deadline = received + left.saturating_sub(DEADLINE_MARGIN);
    let answer = answer_id(input.question.id);
    let opened = loop {
        let opened = service
            .pool
            .write_in(tenant, async |conn| {
                store::open_answer(
                    conn,
                    tenant,
                    input.conversation,
                    &input.question,
                    answer,
                    left + LEASE_MARGIN,
                )
                .await
            })
            .await?;
        if opened.claimed {
            break opened;
        }
        if opened.answer.finish_reason.is_some() {
            return Ok(replay(opened));
        }
        // Another call is answering the same message: its answer is this one's.
        if Instant::now() + WAIT_STEP >= deadline {
            return Err(
                Error::DeadlineExceeded("another call is still answering this message").into(),
            );
        }
        tokio::time::sleep(WAIT_STEP).await;
    };
    // Only the call that takes the lease can have appended (a fresh answer row is always
    // claimable): the message count changed, or nothing did. The cache forgets the
    // conversation while the history is read, not before: a trip less before the model.
    let forget = service.forget_conversation(tenant, input.conversation);
    let read = service.pool.run(async |conn| {
        store::list_messages(
            conn,
            tenant,
            input.conversation,
            Direction::NewestFirst,
            Some(opened.question.sequence - 1),
            HISTORY_LIMIT,
        )
        .await
    });
    let ((), history) = tokio::join!(forget, read);
    let run = history.map(|rows| agent_pb::RunAgentRequest {
        agent_id: conversation.agent_id.clone(),
        history: rows.iter().rev().filter_map(turn).collect(),
        message: opened.question.content.clone(),
        overrides: Some(input.overrides.clone()),
    });
    let upstream = match run {
        Ok(run) => service.dependencies.run_agent(&credentials, run).await,
        Err(error) => Err(error.into()),
    };
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(status) => {
            // Nothing was answered: the answer is stored failed and empty, so the history
            // shows the attempt, and a retry of the message answers it.
            let failed = Finished {
                content: "",
                completion_tokens: 0,
                finish_reason: "error",
                metadata: serde_json::json!({ "error": status.message() }),
            };
            let stored = service
                .pool
                .write_in(tenant, async |conn| {
                    store::finish_answer(conn, tenant, input.conversation, answer, failed).await
                })
                .await;
            if let Err(error) = stored {
                tracing::warn!(%error, "a failed answer was not stored; its lease lapses");
            }
            return Err(status);
        }
    };
    let (events, stream) = mpsc::channel(EVENTS_AHEAD);
    let started = pb::RespondEvent {
        event: Some(pb::respond_event::Event::Started(pb::RespondStarted {
            user_message: Some(opened.question.clone().into()),
            answer_id: answer.to_string(),
        })),
    };
    // The channel is empty: this cannot wait.
    let _ = events.send(Ok(started)).await;
    let relay = Relay {
        pool: service.pool.clone(),
        cache: service.cache.clone(),
        conversation_kind: service.kinds.conversation.clone(),
        tenant,
        conversation: input.conversation,
        answer,
        received,
        deadline,
    };
    tokio::spawn(relay.run(upstream, events));
    Ok(Response::new(ReceiverStream::new(stream)))
}

/// A stored message as a turn of the agent's history; answers that are unfinished, or
/// failed before saying anything, are left out.
fn turn(row: &MessageRow) -> Option<agent_pb::Turn> {
    if row.reply_to.is_some() && (row.finish_reason.is_none() || row.content.is_empty()) {
        return None;
    }
    let (role, content) = match row.role.as_str() {
        "user" => (agent_pb::TurnRole::User, row.content.clone()),
        "assistant" => (agent_pb::TurnRole::Assistant, row.content.clone()),
        "system" => (agent_pb::TurnRole::System, row.content.clone()),
        _ => (
            agent_pb::TurnRole::Tool,
            row.tool_result
                .clone()
                .unwrap_or_else(|| row.content.clone()),
        ),
    };
    Some(agent_pb::Turn {
        role: role as i32,
        content,
    })
}

/// Sends `event` to the caller; false when the caller went away.
async fn pass_on(events: &Events, event: pb::respond_event::Event) -> bool {
    events
        .send(Ok(pb::RespondEvent { event: Some(event) }))
        .await
        .is_ok()
}

/// The stored answer as a stream: started, the whole text as one delta, done.
fn replay(opened: Opened) -> Response<RespondStream> {
    let answer = opened.answer;
    let usage = |key: &str| answer.metadata.get(key).and_then(serde_json::Value::as_i64);
    let prompt_tokens = usage("prompt_tokens").unwrap_or(0) as i32;
    let first_token = usage("time_to_first_token_ms").and_then(|ms| {
        prost_types::Duration::try_from(Duration::from_millis(ms.max(0) as u64)).ok()
    });
    let mut events = vec![pb::respond_event::Event::Started(pb::RespondStarted {
        user_message: Some(opened.question.into()),
        answer_id: answer.id.to_string(),
    })];
    if !answer.content.is_empty() {
        events.push(pb::respond_event::Event::Delta(answer.content.clone()));
    }
    let message: pb::Message = answer.into();
    events.push(pb::respond_event::Event::Done(pb::RespondDone {
        finish_reason: message.finish_reason,
        prompt_tokens,
        completion_tokens: message.token_count,
        time_to_first_token: first_token,
        message: Some(message),
    }));
    let (sender, stream) = mpsc::channel(events.len());
    for event in events {
        let _ = sender.try_send(Ok(pb::RespondEvent { event: Some(event) }));
    }
    Response::new(ReceiverStream::new(stream))
}

/// Relays one answer from the agent service to the caller, then stores it. The tool
/// calls it made are stored as they come, as tool messages after the answer.
struct Relay {
    pool: Pool,
    cache: Cache,
    conversation_kind: CacheKind,
    tenant: Uuid,
    conversation: Uuid,
    answer: Uuid,
    received: Instant,
    deadline: Instant,
}

/// How the agent's answer ended, as far as this service saw it.
struct Ending {
    reason: FinishReason,
    prompt_tokens: i32,
    completion_tokens: Option<i32>,
    model: String,
    /// The agent service's failure, passed on after the answer is stored.
    failure: Option<Status>,
}

impl Ending {
    fn cut(reason: FinishReason, failure: Option<Status>) -> Self {
        Self {
            reason,
            prompt_tokens: 0,
            completion_tokens: None,
            model: String::new(),
            failure,
        }
    }
}

impl Relay {
    async fn run(self, mut upstream: tonic::Streaming<agent_pb::RunAgentEvent>, events: Events) {
        let mut text = String::new();
        let mut deltas = 0i32;
        let mut first_token = None;
        let mut sources: Vec<serde_json::Value> = Vec::new();
        let mut tool_messages = 0u32;
        let ending = loop {
            let event = tokio::select! {
                _ = events.closed() => break Ending::cut(FinishReason::Cancelled, None),
                _ = tokio::time::sleep_until(self.deadline.into()) => {
                    break Ending::cut(FinishReason::Deadline, None)
                }
                event = upstream.message() => event,
            };
            match event.map(|e| e.and_then(|e| e.event)) {
                Ok(Some(agent_pb::run_agent_event::Event::Delta(piece))) => {
                    first_token.get_or_insert_with(|| self.received.elapsed());
                    text.push_str(&piece);
                    deltas += 1;
                    let delta = pb::respond_event::Event::Delta(piece);
                    if !pass_on(&events, delta).await {
                        break Ending::cut(FinishReason::Cancelled, None);
                    }
                }
                Ok(Some(agent_pb::run_agent_event::Event::Context(context))) => {
                    sources = context
                        .chunks
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "collection_id": c.collection_id,
                                "document_id": c.document_id,
                                "chunk_id": c.chunk_id,
                                "title": c.title,
                                "score": c.score,
                            })
                        })
                        .collect();
                    let event = pb::respond_event::Event::Context(context);
                    if !pass_on(&events, event).await {
                        break Ending::cut(FinishReason::Cancelled, None);
                    }
                }
                Ok(Some(agent_pb::run_agent_event::Event::ToolCall(call))) => {
                    let event = pb::respond_event::Event::ToolCall(call);
                    if !pass_on(&events, event).await {
                        break Ending::cut(FinishReason::Cancelled, None);
                    }
                }
                Ok(Some(agent_pb::run_agent_event::Event::ToolResult(result))) => {
                    tool_messages += 1;
                    self.store_tool_result(&result, tool_messages).await;
                    let event = pb::respond_event::Event::ToolResult(result);
                    if !pass_on(&events, event).await {
                        break Ending::cut(FinishReason::Cancelled, None);
                    }
                }
                Ok(Some(agent_pb::run_agent_event::Event::Done(done))) => {
                    break Ending {
                        reason: FinishReason::try_from(done.finish_reason)
                            .unwrap_or(FinishReason::Stop),
                        prompt_tokens: done.prompt_tokens,
                        completion_tokens: Some(done.completion_tokens),
                        model: done.model,
                        failure: None,
                    };
                }
                Ok(None) => {
                    break Ending::cut(
                        FinishReason::Error,
                        Some(Status::unavailable(
                            "the agent's answer ended without its ending",
                        )),
                    );
                }
                Err(status) => break Ending::cut(FinishReason::Error, Some(status)),
            }
        };
        // Stops the agent's run if it is still going.
        drop(upstream);
        let mut metadata = serde_json::json!({
            "model": ending.model,
            "prompt_tokens": ending.prompt_tokens,
            "time_to_first_token_ms": first_token.map(|d| d.as_millis() as i64),
        });
        if !sources.is_empty() {
            metadata["sources"] = serde_json::Value::Array(sources);
        }
        let finished = Finished {
            content: &text,
            completion_tokens: ending.completion_tokens.unwrap_or(deltas),
            finish_reason: finish_reason_name(ending.reason).unwrap_or("error"),
            metadata,
        };
        let stored = self
            .pool
            .write_in(self.tenant, async |conn| {
                store::finish_answer(conn, self.tenant, self.conversation, self.answer, finished)
                    .await
            })
            .await;
        metrics::counter!("respond_answers_total", "finish" => finish_reason_name(ending.reason).unwrap_or("error"))
            .increment(1);
        let last = match (stored, ending.failure) {
            (_, Some(failure)) => Err(failure),
            (Err(error), None) => Err(error.into()),
            (Ok(row), None) => {
                let message: pb::Message = row.into();
                Ok(pb::RespondEvent {
                    event: Some(pb::respond_event::Event::Done(pb::RespondDone {
                        finish_reason: ending.reason as i32,
                        prompt_tokens: ending.prompt_tokens,
                        completion_tokens: message.token_count,
                        time_to_first_token: first_token
                            .and_then(|d| prost_types::Duration::try_from(d).ok()),
                        message: Some(message),
                    })),
                })
            }
        };
        let _ = events.send(last).await;
    }

    /// Stores a tool call and its result as the answer's `n`th tool message (its id
    /// derived from the answer's, so a retried answer stores it once). A failure to store
    /// it is logged: the answer goes on.
    async fn store_tool_result(&self, result: &agent_pb::ToolResult, n: u32) {
        let arguments = agentic_platform::json::from_struct("arguments", result.arguments.as_ref())
            .unwrap_or_else(|_| serde_json::json!({}));
        let message = NewMessage {
            id: Uuid::new_v5(&self.answer, format!("tool:{n}").as_bytes()),
            role: "tool",
            content: String::new(),
            token_count: 0,
            tool_name: Some(result.name.clone()),
            tool_arguments: Some(arguments),
            tool_result: Some(result.result.clone()),
            metadata: serde_json::json!({
                "tool_call_id": result.id,
                "mcp_server_id": result.mcp_server_id,
                "is_error": result.is_error,
                "answer_id": self.answer.to_string(),
                "duration_ms": result
                    .duration
                    .and_then(|d| Duration::try_from(d).ok())
                    .map(|d| d.as_millis() as i64),
            }),
        };
        let stored = self
            .pool
            .write_in(self.tenant, async |conn| {
                store::append_tool_messages(conn, self.tenant, self.conversation, &[message]).await
            })
            .await;
        match stored {
            Ok(_) => {
                super::forget_conversation(
                    &self.cache,
                    &self.conversation_kind,
                    self.tenant,
                    self.conversation,
                )
                .await;
            }
            Err(error) => tracing::warn!(%error, "a tool message was not stored"),
        }
    }
}

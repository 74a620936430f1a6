//! RunAgent: an agent's answer to a message, streamed as the model produces it.
//!
//! `AgentService::answer` checks the agent, fits the prompt into the model's context
//! window, gathers the agent's tools and starts the model; a relay task then passes the
//! model's pieces on until the answer ends, the caller goes away (the model is stopped) or
//! the deadline nears (the answer ends, marked DEADLINE). When the model asks for tool
//! calls, the relay runs them (at once, each within its timeout), streams each call and
//! result, and asks the model again with the results, for up to `MCP_MAX_TOOL_ROUNDS`
//! rounds. RunAgent and workflow steps both answer through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentic_platform::auth::Caller;
use agentic_platform::client::Credentials;
use agentic_platform::error::{Error, Result};
use agentic_platform::json;
use agentic_platform::request;
use agentic_proto::agent::v1 as pb;
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

use super::AgentService;
use crate::input::{self, DEFAULT_MAX_TOKENS, RunInput};
use crate::mcp::toolbox::{Outcome, ToolRequest, Toolbox};
use crate::run::Models;
use crate::run::chat::{ChatMessage, Finish, Generation, Piece, Role, Settings, ToolCall, Usage};
use crate::run::prompt;

/// The stream RunAgent answers with.
pub(super) type RunStream = ReceiverStream<Result<pb::RunAgentEvent, Status>>;

/// The events of one answer, as `AgentService::answer` produces them.
pub(super) type AnswerEvents = mpsc::Receiver<Result<pb::RunAgentEvent, Status>>;

/// The answer ends this long before the caller's deadline, so its ending still arrives.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Events buffered for a slow reader.
const EVENTS_AHEAD: usize = 32;

/// The agent's temperature when it has none.
const DEFAULT_TEMPERATURE: f32 = 0.7;

pub(super) async fn run(
    service: &AgentService,
    request: Request<pb::RunAgentRequest>,
) -> Result<Response<RunStream>, Status> {
    let received = Instant::now();
    let tenant = Caller::of(&request)?.member_tenant()?;
    let run = input::run(request.get_ref())?;
    let credentials = Credentials::of(&request)?;
    let deadline = request::remaining().map(|left| received + left);
    let events = service
        .answer(tenant, &credentials, run, received, deadline)
        .await?;
    Ok(Response::new(ReceiverStream::new(events)))
}

impl AgentService {
    /// Starts the answer of agent `run.agent` of `tenant` to `run.message`, to end by
    /// `deadline`: its events, in order (context, deltas and tool calls, done).
    pub(super) async fn answer(
        &self,
        tenant: Uuid,
        credentials: &Credentials,
        run: RunInput,
        received: Instant,
        deadline: Option<Instant>,
    ) -> Result<AnswerEvents> {
        let agent = self
            .cached_agent(tenant, run.agent)
            .await?
            .ok_or(Error::NotFound("agent"))?;
        if agent.status != pb::AgentStatus::Active as i32 {
            return Err(Error::FailedPrecondition(
                "agent_id: the agent is not active".into(),
            ));
        }
        let model = self.models.resolve(&agent.model).await?;
        let context = if agent.collection_ids.is_empty() {
            None
        } else {
            let found = self
                .knowledge
                .search(credentials, &agent, &run.message.content)
                .instrument(tracing::info_span!(
                    "retrieval",
                    collections = agent.collection_ids.len()
                ))
                .await?;
            Some(prompt::fitting_context(model.measure(), found))
        };
        let toolbox = if model.takes_tools() && !agent.mcp_server_ids.is_empty() {
            let toolbox = self.toolbox(tenant, &agent.mcp_server_ids).await?;
            (!toolbox.is_empty()).then_some(toolbox)
        } else {
            None
        };
        let mut settings = Settings {
            max_tokens: run
                .max_tokens
                .or(agent.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS)
                .max(1) as u32,
            temperature: run
                .temperature
                .or(agent.temperature)
                .unwrap_or(DEFAULT_TEMPERATURE),
            stop: run.stop,
            tools: toolbox.as_ref().map(Toolbox::specs).unwrap_or_default(),
        };
        let fitted =
            tracing::info_span!("prompt.assemble", history = run.history.len()).in_scope(|| {
                let system = match &context {
                    Some(chunks) => prompt::with_context(&agent.system_prompt, chunks),
                    None => agent.system_prompt.clone(),
                };
                prompt::fit(
                    model.measure(),
                    &system,
                    run.history,
                    run.message,
                    settings.max_tokens,
                )
            })?;
        settings.max_tokens = fitted.max_tokens;
        let kind = model.kind();
        let span = tracing::info_span!(
            "llm.generate",
            otel.kind = "client",
            gen_ai.request.model = %agent.model,
            gen_ai.usage.input_tokens = fitted.tokens,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            history_dropped = fitted.dropped,
        );
        let asked = Instant::now();
        let generation = model
            .start(&agent.model, &fitted.messages, settings.clone())
            .instrument(span.clone())
            .await?;
        metrics::histogram!("llm_queue_wait_seconds", "model_kind" => kind)
            .record(generation.queued.as_secs_f64());
        // The suite's own time before the model was asked (as TensorZero's gateway reports
        // it): checks, the agent, the prompt.
        metrics::histogram!("llm_overhead_seconds", "model_kind" => kind)
            .record((asked - received).as_secs_f64());
        let (events, stream) = mpsc::channel(EVENTS_AHEAD);
        let relay = Relay {
            context: context.map(|chunks| pb::RunAgentContext { chunks }),
            model: agent.model,
            kind,
            prompt_tokens: fitted.tokens as u32,
            asked,
            deadline: deadline.map(|at| at.checked_sub(DEADLINE_MARGIN).unwrap_or(at)),
            models: self.models.clone(),
            messages: fitted.messages,
            settings,
            toolbox,
            max_tool_rounds: self.mcp.mcp_max_tool_rounds,
        };
        tokio::spawn(relay.run(generation, events).instrument(span));
        Ok(stream)
    }

    /// The tools of the agent's enabled servers, as last discovered, with their headers.
    async fn toolbox(&self, tenant: Uuid, ids: &[String]) -> Result<Toolbox> {
        let ids: Vec<Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
        let mut rows = self
            .pool
            .query_in(tenant, async |conn| {
                crate::store::find_mcp_servers(conn, tenant, &ids).await
            })
            .await?;
        // In the agent's order: the first server keeps a tool name two servers share.
        rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
        let mut servers = Vec::with_capacity(rows.len());
        for row in rows.into_iter().filter(|row| row.enabled) {
            servers.push((self.endpoint(&row)?, row.tools()));
        }
        Ok(Toolbox::new(servers, &self.mcp))
    }
}

/// Passes one answer's pieces on as RunAgent events, running the tool calls it asks for.
struct Relay {
    /// What retrieval found, sent before the answer.
    context: Option<pb::RunAgentContext>,
    model: String,
    kind: &'static str,
    prompt_tokens: u32,
    asked: Instant,
    deadline: Option<Instant>,
    models: Arc<Models>,
    /// The prompt, grown by each round's calls and results.
    messages: Vec<ChatMessage>,
    settings: Settings,
    toolbox: Option<Toolbox>,
    /// Rounds of tool calls before the model must answer.
    max_tool_rounds: u32,
}

type Events = mpsc::Sender<Result<pb::RunAgentEvent, Status>>;

/// What the answer has used so far, over every round.
#[derive(Default)]
struct Totals {
    first_token: Option<Duration>,
    /// Text pieces, for a model that reports no usage.
    pieces: u32,
    prompt_tokens: u32,
    completion_tokens: u32,
    reported: bool,
}

/// How one generation (one round) ended.
enum Round {
    /// The answer is over.
    Over(Ending),
    /// The model asked for tools, after saying `text`.
    Tools(String, Vec<ToolCall>),
}

impl Relay {
    async fn run(mut self, generation: Generation, events: Events) {
        if let Some(context) = self.context.take() {
            let _ = send(&events, pb::run_agent_event::Event::Context(context)).await;
        }
        metrics::gauge!("llm_generations_in_flight", "model_kind" => self.kind).increment(1.0);
        let mut totals = Totals::default();
        let mut generation = Some(generation);
        let mut round = 0u32;
        let ending = loop {
            let current = match generation.take() {
                Some(current) => current,
                None => match self.next_generation().await {
                    Ok(next) => next,
                    Err(error) => break Ending::Failed(error),
                },
            };
            let (text, calls) = match self.relay(current, &events, &mut totals).await {
                Round::Over(ending) => break ending,
                Round::Tools(text, calls) => (text, calls),
            };
            round += 1;
            match self.run_tools(round, text, calls, &events).await {
                Ok(()) => {}
                Err(ending) => break ending,
            }
            if round >= self.max_tool_rounds {
                // The last round: no tools offered, so the model answers with what it has.
                self.settings.tools.clear();
            }
        };
        if let Some(toolbox) = self.toolbox.take() {
            tokio::spawn(toolbox.close());
        }
        metrics::gauge!("llm_generations_in_flight", "model_kind" => self.kind).decrement(1.0);
        match ending {
            Ending::CallerGone => {
                metrics::counter!("llm_generations_total", "model_kind" => self.kind, "finish" => "cancelled")
                    .increment(1);
            }
            Ending::Failed(error) => {
                metrics::counter!("llm_generations_total", "model_kind" => self.kind, "finish" => "error")
                    .increment(1);
                let _ = events.send(Err(error.into())).await;
            }
            Ending::Done(reason) => {
                let completion = if totals.reported {
                    totals.completion_tokens
                } else {
                    totals.pieces
                };
                let prompt = if totals.prompt_tokens == 0 {
                    self.prompt_tokens
                } else {
                    totals.prompt_tokens
                };
                self.record(reason, totals.first_token, completion);
                tracing::Span::current().record("gen_ai.usage.output_tokens", completion);
                let done = pb::RunAgentDone {
                    finish_reason: reason as i32,
                    prompt_tokens: prompt as i32,
                    completion_tokens: completion as i32,
                    time_to_first_token: totals
                        .first_token
                        .and_then(|d| prost_types::Duration::try_from(d).ok()),
                    model: self.model.clone(),
                };
                let _ = send(&events, pb::run_agent_event::Event::Done(done)).await;
            }
        }
    }

    /// The model asked again, with the prompt as the tool rounds left it.
    async fn next_generation(&self) -> Result<Generation> {
        let model = self.models.resolve(&self.model).await?;
        model
            .start(&self.model, &self.messages, self.settings.clone())
            .await
    }

    /// Relays one generation until it ends, asks for tools, or the caller or the
    /// deadline ends it.
    async fn relay(
        &self,
        mut generation: Generation,
        events: &Events,
        totals: &mut Totals,
    ) -> Round {
        let deadline = sleep_until(self.deadline);
        tokio::pin!(deadline);
        let mut text = String::new();
        let mut calls = Vec::new();
        let round = loop {
            let piece = tokio::select! {
                _ = events.closed() => break Round::Over(Ending::CallerGone),
                _ = &mut deadline => break Round::Over(Ending::Done(pb::FinishReason::Deadline)),
                piece = generation.pieces.recv() => piece,
            };
            match piece {
                Some(Ok(Piece::Text(piece))) => {
                    totals
                        .first_token
                        .get_or_insert_with(|| self.asked.elapsed());
                    totals.pieces += 1;
                    text.push_str(&piece);
                    if send(events, pb::run_agent_event::Event::Delta(piece))
                        .await
                        .is_err()
                    {
                        break Round::Over(Ending::CallerGone);
                    }
                }
                Some(Ok(Piece::ToolCalls(asked))) => calls = asked,
                Some(Ok(Piece::Finished(usage))) => {
                    add_usage(totals, usage);
                    break match usage.finish {
                        // Tools asked for when none were offered (the last round) end it.
                        Finish::ToolCalls
                            if !calls.is_empty() && !self.settings.tools.is_empty() =>
                        {
                            Round::Tools(std::mem::take(&mut text), std::mem::take(&mut calls))
                        }
                        Finish::Length => Round::Over(Ending::Done(pb::FinishReason::Length)),
                        _ => Round::Over(Ending::Done(pb::FinishReason::Stop)),
                    };
                }
                Some(Err(error)) => break Round::Over(Ending::Failed(error)),
                None => {
                    break Round::Over(Ending::Failed(Error::internal(
                        "the model stopped without an ending",
                    )));
                }
            }
        };
        // Stops the model (the local one at its next token; a provider's connection).
        drop(generation);
        round
    }

    /// Runs one round's calls at once, streaming each call and result, and adds them to
    /// the prompt. The caller leaving or the deadline passing ends the answer.
    async fn run_tools(
        &mut self,
        round: u32,
        text: String,
        calls: Vec<ToolCall>,
        events: &Events,
    ) -> std::result::Result<(), Ending> {
        let Some(toolbox) = &self.toolbox else {
            return Err(Ending::Done(pb::FinishReason::Stop));
        };
        let mut assistant = ChatMessage::new(Role::Assistant, text);
        assistant.tool_calls = calls.clone();
        let requests: Vec<ToolRequest> = calls.into_iter().map(|c| toolbox.request(c)).collect();
        for request in &requests {
            let event = pb::run_agent_event::Event::ToolCall(pb::ToolCallRequested {
                id: request.call.id.clone(),
                name: request.name.clone(),
                mcp_server_id: server_id(request),
                arguments: Some(json::to_struct(&request.arguments)),
                round: round as i32,
            });
            if send(events, event).await.is_err() {
                return Err(Ending::CallerGone);
            }
        }
        let running = join_all(requests.into_iter().map(|request| toolbox.call(request)))
            .instrument(tracing::info_span!("mcp.tools", round));
        let deadline = sleep_until(self.deadline);
        let outcomes: Vec<Outcome> = tokio::select! {
            _ = events.closed() => return Err(Ending::CallerGone),
            _ = deadline => return Err(Ending::Done(pb::FinishReason::Deadline)),
            outcomes = running => outcomes,
        };
        self.messages.push(assistant);
        for outcome in outcomes {
            let request = &outcome.request;
            let mut result = ChatMessage::new(Role::Tool, outcome.result.clone());
            result.tool_call_id = Some(request.call.id.clone());
            self.messages.push(result);
            let event = pb::run_agent_event::Event::ToolResult(pb::ToolResult {
                id: request.call.id.clone(),
                name: request.name.clone(),
                mcp_server_id: server_id(request),
                arguments: Some(json::to_struct(&request.arguments)),
                result: outcome.result,
                is_error: outcome.is_error,
                duration: prost_types::Duration::try_from(outcome.duration).ok(),
            });
            if send(events, event).await.is_err() {
                return Err(Ending::CallerGone);
            }
        }
        Ok(())
    }

    fn record(&self, reason: pb::FinishReason, first_token: Option<Duration>, completion: u32) {
        let finish = match reason {
            pb::FinishReason::Length => "length",
            pb::FinishReason::Deadline => "deadline",
            _ => "stop",
        };
        metrics::counter!("llm_generations_total", "model_kind" => self.kind, "finish" => finish)
            .increment(1);
        metrics::counter!("llm_completion_tokens_total", "model_kind" => self.kind)
            .increment(u64::from(completion));
        if let Some(first) = first_token {
            metrics::histogram!("llm_time_to_first_token_seconds", "model_kind" => self.kind)
                .record(first.as_secs_f64());
            let decoding = self.asked.elapsed().saturating_sub(first).as_secs_f64();
            if completion > 1 && decoding > 0.0 {
                metrics::histogram!("llm_tokens_per_second", "model_kind" => self.kind)
                    .record(f64::from(completion - 1) / decoding);
            }
        }
    }
}

fn add_usage(totals: &mut Totals, usage: Usage) {
    if usage.completion_tokens > 0 || usage.prompt_tokens > 0 {
        totals.reported = true;
    }
    totals.prompt_tokens += usage.prompt_tokens;
    totals.completion_tokens += usage.completion_tokens;
}

/// The id of the server a call goes to, or empty for a tool the agent lacks.
fn server_id(request: &ToolRequest) -> String {
    request.server.map(|s| s.to_string()).unwrap_or_default()
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How a relay ended.
enum Ending {
    Done(pb::FinishReason),
    Failed(Error),
    CallerGone,
}

async fn send(events: &Events, event: pb::run_agent_event::Event) -> Result<(), ()> {
    events
        .send(Ok(pb::RunAgentEvent { event: Some(event) }))
        .await
        .map_err(|_| ())
}

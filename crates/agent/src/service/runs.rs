//! RunAgent: an agent's answer to a message, streamed as the model produces it.
//!
//! The handler checks the request, loads the agent (cached), fits the prompt into the
//! model's context window and starts the model; a relay task then passes the model's
//! pieces on until the answer ends, the caller goes away (the model is stopped) or the
//! deadline nears (the answer ends, marked DEADLINE).

use std::time::{Duration, Instant};

use agentic_platform::auth::Caller;
use agentic_platform::client::Credentials;
use agentic_platform::error::{Error, Result};
use agentic_platform::request;
use agentic_proto::agent::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::AgentService;
use crate::input::{self, DEFAULT_MAX_TOKENS};
use crate::run::chat::{Finish, Generation, Piece, Settings, Usage};
use crate::run::prompt;

/// The stream RunAgent answers with.
pub(super) type RunStream = ReceiverStream<Result<pb::RunAgentEvent, Status>>;

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
    let agent = service
        .cached_agent(tenant, run.agent)
        .await?
        .ok_or(Error::NotFound("agent"))?;
    if agent.status != pb::AgentStatus::Active as i32 {
        return Err(Error::FailedPrecondition("agent_id: the agent is not active".into()).into());
    }
    let model = service.models.resolve(&agent.model).await?;
    let context = if agent.collection_ids.is_empty() {
        None
    } else {
        let credentials = Credentials::of(&request)?;
        let found = service
            .knowledge
            .search(&credentials, &agent, &run.message.content)
            .instrument(tracing::info_span!(
                "retrieval",
                collections = agent.collection_ids.len()
            ))
            .await?;
        Some(prompt::fitting_context(model.measure(), found))
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
        .start(&agent.model, &fitted.messages, settings)
        .instrument(span.clone())
        .await?;
    metrics::histogram!("llm_queue_wait_seconds", "model_kind" => kind)
        .record(generation.queued.as_secs_f64());
    // The suite's own time before the model was asked (as TensorZero's gateway reports
    // it): checks, the agent, the prompt.
    metrics::histogram!("llm_overhead_seconds", "model_kind" => kind)
        .record((asked - received).as_secs_f64());
    let deadline = request::remaining().map(|left| asked + left.saturating_sub(DEADLINE_MARGIN));
    let (events, stream) = mpsc::channel(EVENTS_AHEAD);
    let relay = Relay {
        context: context.map(|chunks| pb::RunAgentContext { chunks }),
        model: agent.model,
        kind,
        prompt_tokens: fitted.tokens as u32,
        asked,
        deadline,
    };
    tokio::spawn(relay.run(generation, events).instrument(span));
    Ok(Response::new(ReceiverStream::new(stream)))
}

/// Passes one generation's pieces on as RunAgent events.
struct Relay {
    /// What retrieval found, sent before the answer.
    context: Option<pb::RunAgentContext>,
    model: String,
    kind: &'static str,
    prompt_tokens: u32,
    asked: Instant,
    deadline: Option<Instant>,
}

type Events = mpsc::Sender<Result<pb::RunAgentEvent, Status>>;

impl Relay {
    async fn run(mut self, mut generation: Generation, events: Events) {
        if let Some(context) = self.context.take() {
            let _ = send(&events, pb::run_agent_event::Event::Context(context)).await;
        }
        metrics::gauge!("llm_generations_in_flight", "model_kind" => self.kind).increment(1.0);
        let mut first_token = None;
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let mut completion_pieces = 0u32;
        let ending = loop {
            let piece = tokio::select! {
                _ = events.closed() => break Ending::CallerGone,
                _ = &mut deadline => break Ending::Done(None, pb::FinishReason::Deadline),
                piece = generation.pieces.recv() => piece,
            };
            match piece {
                Some(Ok(Piece::Text(text))) => {
                    first_token.get_or_insert_with(|| self.asked.elapsed());
                    completion_pieces += 1;
                    if send(&events, pb::run_agent_event::Event::Delta(text))
                        .await
                        .is_err()
                    {
                        break Ending::CallerGone;
                    }
                }
                Some(Ok(Piece::Finished(usage))) => {
                    let reason = match usage.finish {
                        Finish::Stop => pb::FinishReason::Stop,
                        Finish::Length => pb::FinishReason::Length,
                    };
                    break Ending::Done(Some(usage), reason);
                }
                Some(Err(error)) => break Ending::Failed(error),
                None => {
                    break Ending::Failed(Error::internal("the model stopped without an ending"));
                }
            }
        };
        // Stops the model (the local one at its next token; a provider's connection).
        drop(generation);
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
            Ending::Done(usage, reason) => {
                let completion = usage.map_or(completion_pieces, |u| u.completion_tokens);
                let prompt = usage.map_or(0, |u| u.prompt_tokens);
                let prompt = if prompt == 0 {
                    self.prompt_tokens
                } else {
                    prompt
                };
                self.record(reason, first_token, completion);
                tracing::Span::current().record("gen_ai.usage.output_tokens", completion);
                let done = pb::RunAgentDone {
                    finish_reason: reason as i32,
                    prompt_tokens: prompt as i32,
                    completion_tokens: completion as i32,
                    time_to_first_token: first_token
                        .and_then(|d| prost_types::Duration::try_from(d).ok()),
                    model: self.model.clone(),
                };
                let _ = send(&events, pb::run_agent_event::Event::Done(done)).await;
            }
        }
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

/// How a relay ended.
enum Ending {
    Done(Option<Usage>, pb::FinishReason),
    Failed(Error),
    CallerGone,
}

async fn send(events: &Events, event: pb::run_agent_event::Event) -> Result<(), ()> {
    events
        .send(Ok(pb::RunAgentEvent { event: Some(event) }))
        .await
        .map_err(|_| ())
}

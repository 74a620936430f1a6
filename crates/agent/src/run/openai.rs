//! Any server with an OpenAI-compatible streaming `POST {base}/v1/chat/completions`
//! (vLLM, Ollama, llama.cpp's server, OpenAI), chosen by model-name prefix.
//!
//! Faults: a refused connection or a 5xx before the answer starts is retried once, then
//! `UNAVAILABLE`; 429 is `RESOURCE_EXHAUSTED` with the server's `Retry-After`; any other
//! refusal is `FAILED_PRECONDITION` with the server's reason; a failure mid answer ends
//! the stream with `UNAVAILABLE` after the text so far. A server that keeps failing opens
//! a circuit breaker, and calls fail at once until it cools down.

use std::sync::Arc;
use std::time::Duration;

use agentic_platform::breaker::{Breaker, Permit};
use agentic_platform::error::{Error, Result};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::chat::{ChatMessage, Finish, Generation, Piece, Role, Settings, ToolCall, Usage};

/// Characters of an error body quoted in the reason.
const MAX_REASON_CHARS: usize = 300;
/// Pieces a provider stream may be read ahead of its reader.
const PIECES_AHEAD: usize = 64;
/// Waited before the one retry.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// A 429 without `Retry-After` is retried after this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One OpenAI-compatible server.
pub struct Provider {
    /// The model-name prefix it serves (`ollama/`), or empty for every model.
    pub prefix: String,
    endpoint: String,
    api_key: Option<String>,
    client: reqwest::Client,
    breaker: Arc<Breaker>,
    /// The context window assumed for its models.
    pub context_window: usize,
}

/// How providers are reached.
pub struct ProviderSettings {
    pub connect_timeout: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    pub context_window: usize,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    temperature: f32,
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CallDelta>,
}

/// A piece of a streamed tool call: the first names it, the rest add to its arguments.
#[derive(Deserialize)]
struct CallDelta {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    /// A piece of the arguments' JSON text; some servers send the arguments as an object.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Why one try failed before the answer started.
enum Refusal {
    /// Worth one more try (no connection, 5xx).
    Retry(String),
    Final(Error),
}

impl Provider {
    /// A provider at `base` (`http://host:port`) serving models named `prefix…`.
    pub fn new(
        prefix: &str,
        base: &str,
        api_key: Option<String>,
        settings: &ProviderSettings,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| Error::internal(format!("build the chat provider client: {e}")))?;
        Ok(Self {
            prefix: prefix.to_owned(),
            endpoint: format!("{}/v1/chat/completions", base.trim_end_matches('/')),
            api_key,
            client,
            breaker: Arc::new(Breaker::new(
                settings.breaker_threshold,
                settings.breaker_cooldown,
            )),
            context_window: settings.context_window,
        })
    }

    /// Whether it serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        model.starts_with(&self.prefix)
    }

    /// Starts streaming the answer of `model` to `messages`.
    pub async fn start(
        &self,
        model: &str,
        messages: &[ChatMessage],
        settings: &Settings,
    ) -> Result<Generation> {
        let model = model.strip_prefix(&self.prefix).unwrap_or(model);
        let body = ChatRequest {
            model,
            messages: messages.iter().filter_map(wire_message).collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
            stop: &settings.stop,
            tools: settings
                .tools
                .iter()
                .map(|tool| WireTool {
                    r#type: "function",
                    function: WireFunction {
                        name: &tool.name,
                        description: &tool.description,
                        parameters: &tool.parameters,
                    },
                })
                .collect(),
        };
        let body = serde_json::to_vec(&body).map_err(Error::internal)?;
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            let permit = self.breaker.permit();
            if permit == Permit::Refuse {
                return Err(unavailable("failing; its circuit breaker is open"));
            }
            match self.send(&body).await {
                Ok(response) => {
                    let (out, pieces) = mpsc::channel(PIECES_AHEAD);
                    tokio::spawn(relay(response, out, self.breaker.clone(), permit));
                    return Ok(Generation {
                        pieces,
                        queued: Duration::ZERO,
                    });
                }
                Err(Refusal::Retry(reason)) => {
                    self.failed(permit, "refused");
                    last = reason;
                }
                Err(Refusal::Final(error)) => {
                    self.breaker.succeeded(permit);
                    return Err(error);
                }
            }
        }
        Err(unavailable(&last))
    }

    fn failed(&self, permit: Permit, kind: &'static str) {
        metrics::counter!("llm_provider_errors_total", "kind" => kind).increment(1);
        if self.breaker.failed(permit) {
            tracing::warn!(endpoint = %self.endpoint, "chat provider circuit breaker open");
        }
    }

    /// One try: the response, once the server has said 200.
    async fn send(&self, body: &[u8]) -> std::result::Result<reqwest::Response, Refusal> {
        let mut request = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Refusal::Retry(format!("unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = agentic_platform::client::retry_after(response.headers());
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        let reason = format!("answered {status}: {text}");
        if status.as_u16() == 429 {
            metrics::counter!("llm_provider_errors_total", "kind" => "rate_limited").increment(1);
            return Err(Refusal::Final(Error::Overloaded(
                format!("the chat provider is rate limiting: {reason}"),
                retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            )));
        }
        if status.is_server_error() {
            return Err(Refusal::Retry(reason));
        }
        metrics::counter!("llm_provider_errors_total", "kind" => "rejected").increment(1);
        Err(Refusal::Final(Error::FailedPrecondition(format!(
            "agent.model: the chat provider refused the request: {reason}"
        ))))
    }
}

/// A prompt message as the API takes it. A tool turn of an earlier answer (no call id) is
/// left out: the API takes tool results only right after the call that asked for them,
/// and the answer that used it is in the history.
fn wire_message(message: &ChatMessage) -> Option<WireMessage<'_>> {
    if message.role == Role::Tool && message.tool_call_id.is_none() {
        return None;
    }
    Some(WireMessage {
        role: message.role.as_str(),
        content: &message.content,
        tool_calls: message
            .tool_calls
            .iter()
            .map(|call| WireCall {
                id: &call.id,
                r#type: "function",
                function: WireCallFunction {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            })
            .collect(),
        tool_call_id: message.tool_call_id.as_deref(),
    })
}

/// `UNAVAILABLE` naming the provider as the dependency that is down (so the services
/// calling this one do not take this service for down); the reason goes to the log.
fn unavailable(reason: &str) -> Error {
    tracing::warn!(reason, "chat provider unavailable");
    Error::DependencyUnavailable("chat provider")
}

/// Reads the server's events into `out` until the answer ends, the server fails, or the
/// reader goes away (then the connection is dropped, which stops the server's work).
async fn relay(
    response: reqwest::Response,
    out: mpsc::Sender<Result<Piece>>,
    breaker: Arc<Breaker>,
    permit: Permit,
) {
    let mut events = response.bytes_stream().eventsource();
    let mut finish = None;
    let mut usage = None;
    let mut pieces = 0u32;
    let mut calls: Vec<ToolCall> = Vec::new();
    let failure = loop {
        let event = tokio::select! {
            _ = out.closed() => return,
            event = events.next() => event,
        };
        let data = match event {
            None => break Some("the stream ended before [DONE]".to_owned()),
            Some(Err(error)) => break Some(format!("the stream failed: {error}")),
            Some(Ok(event)) => event.data,
        };
        if data.trim() == "[DONE]" {
            break None;
        }
        let chunk: Chunk = match serde_json::from_str(&data) {
            Ok(chunk) => chunk,
            Err(error) => break Some(format!("an event that is not a chunk: {error}")),
        };
        if let Some(error) = chunk.error {
            break Some(format!("the provider reported {error}"));
        }
        usage = chunk.usage.or(usage);
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                finish = Some(match reason.as_str() {
                    "length" => Finish::Length,
                    "tool_calls" => Finish::ToolCalls,
                    _ => Finish::Stop,
                });
            }
            for delta in choice.delta.tool_calls {
                add_call_delta(&mut calls, delta);
            }
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                pieces += 1;
                if out.send(Ok(Piece::Text(text))).await.is_err() {
                    return;
                }
            }
        }
    };
    let piece = match failure {
        Some(reason) => {
            metrics::counter!("llm_provider_errors_total", "kind" => "mid_stream").increment(1);
            breaker.failed(permit);
            Err(unavailable(&reason))
        }
        None => {
            breaker.succeeded(permit);
            calls.retain(|call| !call.name.is_empty());
            let finish = if calls.is_empty() {
                finish
                    .filter(|f| *f != Finish::ToolCalls)
                    .unwrap_or(Finish::Stop)
            } else {
                if out.send(Ok(Piece::ToolCalls(calls))).await.is_err() {
                    return;
                }
                Finish::ToolCalls
            };
            Ok(Piece::Finished(Usage {
                finish,
                prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
                completion_tokens: usage.map_or(pieces, |u| u.completion_tokens),
            }))
        }
    };
    let _ = out.send(piece).await;
}

/// Adds a streamed piece of a tool call to the calls so far (by its index).
fn add_call_delta(calls: &mut Vec<ToolCall>, delta: CallDelta) {
    while calls.len() <= delta.index {
        calls.push(ToolCall {
            id: format!("call_{}", calls.len()),
            name: String::new(),
            arguments: String::new(),
        });
    }
    let call = &mut calls[delta.index];
    if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
        call.id = id;
    }
    if let Some(function) = delta.function {
        if let Some(name) = function.name {
            call.name.push_str(&name);
        }
        match function.arguments {
            Some(serde_json::Value::String(piece)) => call.arguments.push_str(&piece),
            Some(serde_json::Value::Null) | None => {}
            Some(object) => call.arguments.push_str(&object.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_tool_calls_are_assembled_by_index() {
        let mut calls = Vec::new();
        let deltas: Vec<CallDelta> = serde_json::from_value(serde_json::json!([
            {"index": 0, "id": "a", "function": {"name": "weather", "arguments": ""}},
            {"index": 1, "id": "b", "function": {"name": "time", "arguments": "{}"}},
            {"index": 0, "function": {"arguments": "{\"city\":"}},
            {"index": 0, "function": {"arguments": "\"Oslo\"}"}}
        ]))
        .unwrap();
        for delta in deltas {
            add_call_delta(&mut calls, delta);
        }
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "a");
        assert_eq!(calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(calls[1].name, "time");
    }

    #[test]
    fn arguments_sent_as_an_object_are_taken_as_their_json() {
        let mut calls = Vec::new();
        let delta: CallDelta = serde_json::from_value(serde_json::json!(
            {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}
        ))
        .unwrap();
        add_call_delta(&mut calls, delta);
        assert_eq!(calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(calls[0].id, "call_0");
    }
}

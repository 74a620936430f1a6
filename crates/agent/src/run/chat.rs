//! What every chat model takes and gives: a prompt of role-tagged messages and the
//! answer's settings in, pieces of text and then one ending out.

use std::time::Duration;

use agentic_platform::error::Error;
use tokio::sync::mpsc;

/// Who said a message of the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role's name in chat templates and the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The calls an assistant message asked for (within an answer's tool rounds).
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers; None for a tool turn of an earlier answer.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool offered to the model (an OpenAI `tools` function).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// The tool's input as a JSON Schema.
    pub parameters: serde_json::Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The model's id of the call, which the result names.
    pub id: String,
    pub name: String,
    /// JSON text, as the model wrote it.
    pub arguments: String,
}

/// How one answer is produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The most tokens the answer may have.
    pub max_tokens: u32,
    /// 0 picks the likeliest token every time (the same answer on every run).
    pub temperature: f32,
    /// Sequences that end the answer; not part of it.
    pub stop: Vec<String>,
    /// Tools the model may call (models that take tools; empty: none).
    pub tools: Vec<ToolSpec>,
}

/// Why the model stopped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its answer, or wrote a stop sequence.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The model asked for tool calls (a `ToolCalls` piece came before).
    ToolCalls,
}

/// A generation's output, in order: texts, the tool calls asked for if any, then one
/// `Finished`.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    ToolCalls(Vec<ToolCall>),
    Finished(Usage),
}

/// The ending of an answer the model finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A generation under way. Dropping it stops the model: the local model at its next token,
/// a provider by closing the connection.
pub struct Generation {
    pub pieces: mpsc::Receiver<Result<Piece, Error>>,
    /// How long the generation waited for the model to be free (the local model's queue).
    pub queued: Duration,
}

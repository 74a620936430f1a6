//! MCP tool servers, reached for real with the official SDK (`rmcp`): discovering a
//! server's tools, and the tools of an agent's servers during one answer.
//!
//! `session.rs` opens a session with one server (streamable HTTP with its sealed headers,
//! the older HTTP with SSE (`legacy_sse.rs`), or a local process where the operator allows
//! commands), `toolbox.rs` holds an agent's
//! tools for one answer: their OpenAI schemas, argument checks and calls.

pub mod legacy_sse;
pub mod session;
pub mod toolbox;

pub use crate::args::McpArgs;

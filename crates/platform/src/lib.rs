//! `agentic-platform`: the plumbing every Agentic service shares.
//!
//! One module per concern, each usable on its own: configuration blocks, the PostgreSQL
//! pool, the two-level cache, JWT auth, paging, errors, telemetry, the admin HTTP port and
//! the gRPC server builder.

pub mod admin;
pub mod auth;
pub mod batch;
pub mod blocking;
pub mod cache;
pub mod client;
pub mod coalesce;
pub mod config;
pub mod db;
pub mod deadline;
pub mod error;
mod framing;
pub mod health;
pub mod json;
pub mod message_limit;
pub mod paging;
pub mod panic;
pub mod rpc;
pub mod secrets;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod time;
pub mod validate;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use error::{Error, Result};

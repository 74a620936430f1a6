//! `agentic-platform`: the plumbing every Agentic service shares.
//!
//! One module per concern, each usable on its own. The rooms:
//!
//! - a service and how it is run: [`service`] (the [`service::ServiceType`] trait and
//!   the shared [`service::Context`]), [`server`] (the gRPC server builder, its tower
//!   [`server::layers`] in the order applied, readiness and the admin HTTP port),
//!   [`config`] (the clap blocks every service flattens), [`telemetry`];
//! - what a request knows: [`request`] (its deadline, read consistency and the WAL
//!   position its reads must see), [`auth`]
//!   (tokens and the verified caller), [`principal`] (whether the caller's tenant and
//!   user may still call), [`ratelimit`] (whether the caller has calls left);
//! - data: [`db`] (the PostgreSQL pool and its read replicas), [`cache`] (the two-level
//!   cache), [`redis_client`] (how every part opens Redis), [`batch`], [`idempotency`]
//!   (creates done once per request id);
//! - the API's conventions: [`error`], [`validate`], [`paging`], [`fieldmask`], [`json`],
//!   [`time`];
//! - calling other services: [`client`], with a [`breaker`] per dependency;
//! - odds and ends a service may need: [`blocking`] (CPU-bound work off the runtime),
//!   [`secrets`] (sealing stored secrets);
//! - [`testsuite`] (feature `testsuite`): fixtures for tests against real PostgreSQL,
//!   Redis and services.
//!
//! `docs/architecture.md` at the repository's root walks through them.

#![warn(missing_docs)]

pub mod auth;
pub mod batch;
pub mod blocking;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod fieldmask;
pub mod hop;
pub mod idempotency;
pub mod json;
pub mod paging;
pub mod principal;
pub mod ratelimit;
pub mod redis_client;
pub mod request;
pub mod secrets;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod time;
pub mod turns;
pub mod validate;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use error::{Error, Result};

//! The tower layers every service's server applies, listed here in the order a request
//! meets them (outermost first). [`crate::server::Server`] stacks them in this order;
//! a new layer gets its file here and its place in both lists.
//!
//! 1. [`panic`]: a handler that panics answers `INTERNAL` instead of dropping the
//!    connection.
//! 2. [`rpc`]: a span and the RED metrics per RPC, recorded even when the call is
//!    cancelled; slow calls are logged.
//! 3. [`message_limit`]: a request larger than `GRPC_MAX_MESSAGE_SIZE`, compressed or
//!    not, answers `RESOURCE_EXHAUSTED` before it is buffered.
//! 4. [`deadline`]: the caller's `grpc-timeout`, capped by `REQUEST_TIMEOUT`, bounds the
//!    request and everything it waits on.
//! 5. [`consistency`]: `x-read-consistency: strong` makes the request's reads skip the
//!    cache.
//! 6. [`read_your_writes`]: `x-min-lsn` says what WAL position the request's reads on
//!    database replicas must see; the answer says what its writes reached.
//! 7. [`auth`]: the bearer token is verified and the caller put into the request.
//! 8. [`ratelimit`]: the caller (its user or tenant, or the address of a call without a
//!    token) must have calls left; the limit state goes on every response.
//! 9. [`principal`]: the caller's tenant and user must still exist and be active.
//!
//! Answers these layers give before the request's body is read wait for it briefly
//! first ([`early`]).

// In the order the server applies them (blank lines keep rustfmt from sorting them).
pub mod panic;

pub mod rpc;

pub mod message_limit;

pub mod deadline;

pub mod consistency;

pub mod read_your_writes;

pub mod auth;

pub mod ratelimit;

pub mod principal;

/// Shared by the layers that answer before a request's body is read.
mod early;

/// A layer's own future for the calls it does not simply pass on (answered itself, or
/// after waiting for something); boxed, so only those calls pay for it.
pub type Boxed<R, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, E>> + Send>>;

pub use auth::AuthLayer;
pub use consistency::ConsistencyLayer;
pub use deadline::DeadlineLayer;
pub use message_limit::MessageLimitLayer;
pub use panic::CatchPanicLayer;
pub use principal::PrincipalLayer;
pub use ratelimit::RateLimitLayer;
pub use read_your_writes::ReadYourWritesLayer;
pub use rpc::RpcLayer;

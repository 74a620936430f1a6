//! Answers given before a request's body was read (a missing token, a spent limit, a
//! suspended tenant) wait for the body that is already on its way, briefly, first.
//!
//! Why: answering while the client is still sending makes the server reset the stream,
//! and the client's frames still in flight then arrive on a closed stream. h2 remembers
//! a few recently reset streams to ignore such frames; past that it resets again, and
//! counts these resets for the connection's whole life. After 1,024 of them it closes
//! the connection with `ENHANCE_YOUR_CALM`, failing every call in flight on it: a client
//! rejected often at high concurrency (a caller over its rate limit) would lose its
//! connection every few thousand calls. A unary request's body has almost always arrived
//! with its headers; once it is read, the answer closes the stream cleanly.

use std::time::Duration;

use bytes::Buf;
use http_body::Body;

/// Longest wait for the body: a streaming client that waits for an answer before it
/// sends more gets it after this.
const WAIT: Duration = Duration::from_millis(50);
/// Most bytes read (and dropped) before answering anyway.
const MAX_BYTES: usize = 1 << 20;

/// `response`, once `request`'s body has ended, or after [`WAIT`] or [`MAX_BYTES`].
pub(crate) async fn after_body<B, R>(request: http::Request<B>, response: R) -> R
where
    B: Body + Send,
{
    let body = std::pin::pin!(request.into_body());
    let _ = tokio::time::timeout(WAIT, drain(body)).await;
    response
}

async fn drain<B: Body>(mut body: std::pin::Pin<&mut B>) {
    let mut read = 0;
    while read < MAX_BYTES {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.remaining()),
            Some(Err(_)) | None => return,
        }
    }
}

//! The largest request message a server accepts, answered `RESOURCE_EXHAUSTED` whether
//! or not the message is compressed (the gRPC convention for size limits).
//!
//! tonic itself answers `OUT_OF_RANGE` when a frame's declared length is over its limit,
//! and `RESOURCE_EXHAUSTED` only when a compressed message inflates past it. This layer
//! reads each gRPC frame header (a flag byte and a 4-byte length) as the request body
//! streams in, and fails the body with `RESOURCE_EXHAUSTED` at the first frame over the
//! limit, before tonic decodes it. Inflated sizes stay with tonic, whose limit the
//! services set to the same value.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::server::framing::Framing;

/// Bytes before every gRPC message: compressed flag and big-endian length.
const FRAME_HEADER_LEN: usize = 5;

/// Refuses request messages larger than the limit with `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimitLayer {
    limit: usize,
}

impl MessageLimitLayer {
    /// A limit of `limit` bytes per message, compressed or not.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`MessageLimitLayer`] wraps around the inner one.
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<http::Request<Body>> for MessageLimit<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner.call(request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                frames: Frames::new(limit),
            })
        }))
    }
}

/// Tracks gRPC frame boundaries across however the body is chunked.
#[derive(Debug)]
struct Frames {
    limit: usize,
    framing: Framing<FRAME_HEADER_LEN>,
}

impl Frames {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            framing: Framing::after(0),
        }
    }

    /// Reads `chunk`; fails at a frame header that declares more than the limit.
    fn read(&mut self, chunk: &[u8]) -> Result<(), tonic::Status> {
        let limit = self.limit;
        self.framing.walk(chunk, |header| {
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if length > limit {
                metrics::counter!("grpc_server_messages_too_large_total").increment(1);
                return Err(tonic::Status::resource_exhausted(format!(
                    "message of {length} bytes is over the limit of {limit} bytes"
                )));
            }
            Ok(length)
        })
    }
}

struct LimitedBody {
    inner: Body,
    frames: Frames,
}

impl HttpBody for LimitedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.frames.read(data.chunk())?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, length: u32) -> Vec<u8> {
        let mut bytes = vec![flag];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0u8, length.min(64) as usize));
        bytes
    }

    #[test]
    fn frames_within_the_limit_pass_however_they_are_split() {
        let mut frames = Frames::new(64);
        let stream: Vec<u8> = [frame(0, 10), frame(1, 64), frame(0, 0)].concat();
        for chunk in stream.chunks(3) {
            frames.read(chunk).unwrap();
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_resource_exhausted_compressed_or_not() {
        for flag in [0, 1] {
            let mut frames = Frames::new(64);
            frames.read(&frame(0, 64)).unwrap();
            let error = frames
                .read(&frame(flag, 65)[..3])
                .and_then(|()| frames.read(&frame(flag, 65)[3..5]));
            assert_eq!(error.unwrap_err().code(), tonic::Code::ResourceExhausted);
        }
    }
}

//! Responses that finish together leave in one write.
//!
//! hyper runs every HTTP/2 stream as a task of its own, and each stream's response wakes
//! the connection's task. Tokio runs a task woken that way next (its LIFO slot), so the
//! connection wrote after nearly every response: about one `writev` for every 1.6
//! responses under load, each a system call for the server and a wake-up for the client.
//!
//! [`CoalescedWrites`] makes the connection's task step aside once before it writes, when
//! the client has more than one request open: it wakes itself and returns `Pending`,
//! which puts it at the back of the run queue, behind the streams that are ready. When it runs again, every response they finished meanwhile is in HTTP/2's
//! buffer and goes out in the same write. A lone request is written at once: stepping
//! aside would only wake the idle second worker, for nothing to wait for.
//!
//! Open requests are counted from HTTP/2's frame headers in the bytes that pass: a HEADERS
//! frame from the client opens one (gRPC clients send no trailers); a HEADERS frame from
//! the server that ends its stream (the trailers), or a RST_STREAM either way, closes one.

use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::server::framing::Framing;

/// A connection whose writes wait one scheduler turn while the client has several
/// requests open, so that writes of concurrent responses are made together.
#[derive(Debug)]
pub struct CoalescedWrites<T> {
    inner: T,
    /// Frame boundaries of what was read, and of what was written.
    read_frames: FrameHeaders,
    written_frames: FrameHeaders,
    /// Requests opened and not yet answered or reset.
    open: usize,
    /// This flush has already stepped aside once; its writes go through.
    stepped_aside: bool,
}

impl<T> CoalescedWrites<T> {
    /// Wraps an accepted connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            read_frames: FrameHeaders::after(PREFACE_LEN),
            written_frames: FrameHeaders::after(0),
            open: 0,
            stepped_aside: false,
        }
    }

    /// `Pending` (with the task woken at once) the first time a flush tries to write,
    /// if other requests than the one being answered may finish within a turn.
    fn step_aside(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stepped_aside || self.open < 2 {
            return Poll::Ready(());
        }
        self.stepped_aside = true;
        // A task that wakes itself is queued behind the tasks already ready (Tokio
        // treats it as a yield), not run next.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Counts the requests that `bytes`, just written, answer or reset.
    fn wrote(&mut self, bytes: &[u8]) {
        let mut open = self.open;
        self.written_frames.walk(bytes, |kind, flags| {
            let ends = kind == RST_STREAM || (kind == HEADERS && flags & END_STREAM != 0);
            if ends {
                open = open.saturating_sub(1);
            }
        });
        self.open = open;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        let mut open = self.open;
        self.read_frames
            .walk(&buf.filled()[before..], |kind, _| match kind {
                HEADERS => open += 1,
                RST_STREAM => open = open.saturating_sub(1),
                _ => {}
            });
        self.open = open;
        Poll::Ready(read)
    }
}

/// The client's connection preface (RFC 9113 §3.4), before its first frame.
const PREFACE_LEN: usize = 24;
/// A frame header: a 24-bit payload length, a type, flags and a stream id.
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;

/// The HTTP/2 frames of one direction of a connection.
#[derive(Debug)]
struct FrameHeaders(Framing<FRAME_HEADER_LEN>);

impl FrameHeaders {
    /// Frames start after `preface` bytes.
    fn after(preface: usize) -> Self {
        Self(Framing::after(preface))
    }

    /// Calls `frame(type, flags)` for each frame whose header ends within `bytes`, the
    /// next bytes of this direction.
    fn walk(&mut self, bytes: &[u8], mut frame: impl FnMut(u8, u8)) {
        let walked = self.0.walk(bytes, |header| {
            let [a, b, c, kind, flags, ..] = *header;
            frame(kind, flags);
            Ok::<_, Infallible>(u32::from_be_bytes([0, a, b, c]) as usize)
        });
        let Ok(()) = walked;
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.step_aside(cx));
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.wrote(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.step_aside(cx));
        let written = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        let mut left = written;
        for buf in bufs {
            let part = left.min(buf.len());
            self.wrote(&buf[..part]);
            left -= part;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// HTTP/2 flushes after each round of writes; the next round may step aside again.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.stepped_aside = false;
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for CoalescedWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes written come out whole and in order, across flushes, and reads pass through.
    #[tokio::test]
    async fn writes_arrive_whole_and_in_order() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut server = CoalescedWrites::new(server);
        let mut client = client;
        for round in 0..3u8 {
            server.write_all(&[round; 1000]).await.unwrap();
            let written = server
                .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
                .await
                .unwrap();
            assert_eq!(written, 4);
            server.flush().await.unwrap();
        }
        server.shutdown().await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        let mut expected = Vec::new();
        for round in 0..3u8 {
            expected.extend_from_slice(&[round; 1000]);
            expected.extend_from_slice(b"abcd");
        }
        assert_eq!(received, expected);

        client.write_all(b"ping").await.unwrap();
        let mut read = [0; 4];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"ping");
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A frame of `kind` with `flags` and a payload of `len` zero bytes.
    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut frame = (len as u32).to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        frame.resize(FRAME_HEADER_LEN + len, 0);
        frame
    }

    /// Frames are found wherever the reads split the bytes, and payloads that look like
    /// frame headers are passed over.
    #[test]
    fn frames_are_found_across_any_split() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        assert_eq!(stream.len(), PREFACE_LEN);
        stream.extend(frame(0x4, 0, 18)); // SETTINGS
        stream.extend(frame(HEADERS, 0x4, 40));
        // A DATA payload holding what would read as a HEADERS frame header.
        let mut data = frame(0x0, 0, 20);
        data[FRAME_HEADER_LEN..FRAME_HEADER_LEN * 2].copy_from_slice(&frame(HEADERS, 0, 0));
        stream.extend(data);
        stream.extend(frame(HEADERS, 0x5, 0));
        stream.extend(frame(0x8, 0, 4)); // WINDOW_UPDATE
        stream.extend(frame(RST_STREAM, 0, 4));
        let expected = vec![
            (0x4, 0),
            (HEADERS, 0x4),
            (0x0, 0),
            (HEADERS, 0x5),
            (0x8, 0),
            (RST_STREAM, 0),
        ];
        for chunk in [1, 2, 5, 9, 10, 64, stream.len()] {
            let mut frames = FrameHeaders::after(PREFACE_LEN);
            let mut found = Vec::new();
            for bytes in stream.chunks(chunk) {
                frames.walk(bytes, |kind, flags| found.push((kind, flags)));
            }
            assert_eq!(found, expected, "read {chunk} bytes at a time");
        }
    }

    /// A new connection and its client (the first half).
    fn connection() -> (
        tokio::io::DuplexStream,
        CoalescedWrites<tokio::io::DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        (client, CoalescedWrites::new(server))
    }

    /// The client sends its preface and opens `requests` requests (once per connection).
    async fn open(
        client: &mut tokio::io::DuplexStream,
        server: &mut CoalescedWrites<tokio::io::DuplexStream>,
        requests: usize,
    ) {
        let mut bytes = vec![0; PREFACE_LEN];
        for _ in 0..requests {
            bytes.extend(frame(HEADERS, 0x4, 30));
            bytes.extend(frame(0x0, END_STREAM, 12));
        }
        client.write_all(&bytes).await.unwrap();
        let mut read = vec![0; bytes.len()];
        server.read_exact(&mut read).await.unwrap();
    }

    /// The server's trailers for one request.
    fn trailers() -> Vec<u8> {
        frame(HEADERS, 0x4 | END_STREAM, 20)
    }

    /// With one request open, its response is written at once.
    #[tokio::test]
    async fn a_lone_response_is_written_at_once() {
        let (mut client, mut server) = connection();
        open(&mut client, &mut server, 1).await;
        assert_eq!(server.open, 1);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let bytes = trailers();
        assert!(matches!(
            Pin::new(&mut server).poll_write(&mut cx, &bytes),
            Poll::Ready(Ok(n)) if n == bytes.len()
        ));
        assert_eq!(server.open, 0);
    }

    /// With several requests open, the first write of a flush yields once, waking the
    /// task so it is not lost; the rest of the flush's writes go through. Answered and
    /// reset requests leave the count, and the last one open is written at once.
    #[tokio::test]
    async fn the_first_write_of_a_flush_steps_aside_while_others_are_open() {
        let (mut client, mut server) = connection();
        open(&mut client, &mut server, 4).await;
        assert_eq!(server.open, 4);
        let wakes = std::sync::Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        let bytes = trailers();
        let mut pinned = Pin::new(&mut server);
        assert!(pinned.as_mut().poll_write(&mut cx, &bytes).is_pending());
        assert_eq!(woken(), 1);
        let two = [IoSlice::new(&bytes), IoSlice::new(&bytes)];
        assert!(matches!(
            pinned.as_mut().poll_write_vectored(&mut cx, &two),
            Poll::Ready(Ok(n)) if n == bytes.len() * 2
        ));
        assert_eq!(pinned.open, 2);
        assert!(matches!(
            pinned.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));

        // The client resets one of the two left: one open, written at once.
        client.write_all(&frame(RST_STREAM, 0, 4)).await.unwrap();
        let mut read = [0; FRAME_HEADER_LEN + 4];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(server.open, 1);
        let mut pinned = Pin::new(&mut server);
        assert!(matches!(
            pinned.as_mut().poll_write(&mut cx, &bytes),
            Poll::Ready(Ok(_))
        ));
        assert_eq!(woken(), 1);
        assert_eq!(pinned.open, 0);
    }
}

//! Responses that finish together leave in one write.
//!
//! hyper runs every HTTP/2 stream as a task of its own, and each stream's response wakes
//! the connection's task. Tokio runs a task woken that way next (its LIFO slot), so the
//! connection wrote after nearly every response: about one `writev` for every 1.6
//! responses under load, each a system call for the server and a wake-up for the client.
//!
//! [`CoalescedWrites`] makes the connection's task step aside once before it writes: it
//! wakes itself and returns `Pending`, which puts it at the back of the run queue, behind
//! the streams that are ready. When it runs again, every response they finished meanwhile
//! is in HTTP/2's buffer and goes out in the same write. The step aside happens once per
//! flush, so a lone response waits for one turn of the scheduler and no more.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// A connection whose writes wait one scheduler turn, so that writes of concurrent
/// responses are made together.
#[derive(Debug)]
pub struct CoalescedWrites<T> {
    inner: T,
    /// This flush has already stepped aside once; its writes go through.
    stepped_aside: bool,
}

impl<T> CoalescedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            stepped_aside: false,
        }
    }

    /// `Pending` (with the task woken at once) the first time a flush tries to write.
    fn step_aside(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stepped_aside {
            return Poll::Ready(());
        }
        self.stepped_aside = true;
        // A task that wakes itself is queued behind the tasks already ready (Tokio
        // treats it as a yield), not run next.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.step_aside(cx));
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.step_aside(cx));
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// HTTP/2 flushes after each round of writes; the next round steps aside again.
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
            server
                .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
                .await
                .unwrap();
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

    /// The first write of a flush yields once, waking the task so it is not lost; the
    /// rest of the flush's writes go through.
    #[test]
    fn the_first_write_of_a_flush_steps_aside_once() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut server = CoalescedWrites::new(server);
        let wakes = std::sync::Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        let mut pinned = Pin::new(&mut server);
        assert!(pinned.as_mut().poll_write(&mut cx, b"a").is_pending());
        assert_eq!(woken(), 1);
        assert!(matches!(
            pinned.as_mut().poll_write(&mut cx, b"a"),
            Poll::Ready(Ok(1))
        ));
        assert!(matches!(
            pinned.as_mut().poll_write(&mut cx, b"b"),
            Poll::Ready(Ok(1))
        ));
        assert!(matches!(
            pinned.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(woken(), 1);
        assert!(pinned.as_mut().poll_write(&mut cx, b"c").is_pending());
        assert_eq!(woken(), 2);
    }
}

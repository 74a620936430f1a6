//! [`TcpProxy`]: a TCP hop a test can sever or stall, to cut a service off its database
//! or its Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP proxy in front of `upstream` that a test can cut and restore, or stall: a
/// stalled proxy keeps every connection open and accepts new ones but forwards nothing,
/// as a server stopped with SIGSTOP would.
pub struct TcpProxy {
    /// Where clients connect to reach the upstream.
    pub addr: SocketAddr,
    severed: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<CancellationToken>>,
    stalled: tokio::sync::watch::Sender<bool>,
    refuse: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// A proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let severed = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (stalled, gate) = tokio::sync::watch::channel(false);
        let stop = CancellationToken::new();
        let refuse = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, current, stopped) = (severed.clone(), connections.clone(), stop.clone());
        let refusing = refuse.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else {
                    continue;
                };
                let refused = refusing
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refused || flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = current.lock().expect("proxy lock").clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (from_client, to_client) = client.into_split();
                    let (from_server, to_server) = server.into_split();
                    tokio::select! {
                        () = cut.cancelled() => {}
                        () = pump(from_client, to_server, gate.clone()) => {}
                        () = pump(from_server, to_client, gate) => {}
                    }
                });
            }
        });
        Self {
            addr,
            severed,
            connections,
            stalled,
            refuse,
            stop,
        }
    }

    /// Drops the next `count` connections as soon as they arrive.
    pub fn refuse_next(&self, count: usize) {
        self.refuse.store(count, Ordering::SeqCst);
    }

    /// Drops every open connection and refuses new ones.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::SeqCst);
        self.connections.lock().expect("proxy lock").cancel();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        *self.connections.lock().expect("proxy lock") = CancellationToken::new();
        self.severed.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes, keeping every connection open.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards bytes again, including what was held.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies `from` to `to` while the gate is open; holds what it read while it is shut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buf).await else {
            return;
        };
        if read == 0 || stalled.wait_for(|stalled| !stalled).await.is_err() {
            return;
        }
        if to.write_all(&buf[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.connections.lock().expect("proxy lock").cancel();
    }
}

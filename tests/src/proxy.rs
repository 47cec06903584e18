//! A TCP proxy on a free loopback port with a black-hole switch: while it
//! is on, bytes are held in both directions but every connection stays
//! open, which is what a network partition looks like to both ends (no
//! reset, no FIN, just silence). Used to cut one coordinator off from
//! Postgres.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    holes: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port and forwards to `target_port`.
    pub async fn start(target_port: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let holes = Arc::new(AtomicBool::new(false));
        let h = holes.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, h.clone()));
                tokio::spawn(pipe(ro, wi, h.clone()));
            }
        });
        Ok(Proxy { port, holes, task })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Holds every byte from now on (true) or lets them flow again (false).
    pub fn black_hole(&self, on: bool) {
        self.holes.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    holes: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while holes.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while holes.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

//! What every protocol's driver and listener share: a buffered stream with
//! timeouts on every read and write, and the accept loop that applies the
//! connection limits (SPEC 8), numbers connections for the logs, and stops
//! at shutdown. Protocol rules stay in each protocol's session.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::conn::{ConnectionLimits, ConnectionTracker, Refusal};
use crate::shutdown::Shutdown;

/// An output buffer grown past this by a large reply is freed after the
/// flush, so an idle session does not keep it.
pub const KEEP_OUTPUT_CAPACITY: usize = 128 * 1024;
/// How long a refused client gets to read its refusal.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off after a failed accept (out of file descriptors and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Numbers connections of every protocol for the logs.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed or the socket failed.
    Gone,
    /// A read or write timed out.
    Timeout,
}

/// A stream with an input buffer (read in chunks, consumed by parsers) and
/// an output buffer (replies queued, then flushed in one write).
pub struct Io<S> {
    pub stream: S,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    pub out: Vec<u8>,
    read_chunk: usize,
    write_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub fn new(stream: S, read_chunk: usize, write_timeout: Duration) -> Self {
        Io {
            stream,
            buf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            read_chunk,
            write_timeout,
        }
    }

    /// The bytes received and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    /// Reads more bytes, waiting at most `limit`. The caller consumes what
    /// it parsed before asking for more, so the buffer holds at most one
    /// unparsed line (bounded by the parser) plus one read.
    pub async fn fill(&mut self, limit: Duration) -> Result<(), End> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(self.read_chunk);
        match tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(End::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Gone),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Writes everything queued, waiting at most the write timeout.
    pub async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        let result = match tokio::time::timeout(self.write_timeout, write).await {
            Err(_) => Err(End::Timeout),
            Ok(Err(_)) => Err(End::Gone),
            Ok(Ok(())) => Ok(()),
        };
        self.out.clear();
        if self.out.capacity() > KEEP_OUTPUT_CAPACITY {
            self.out = Vec::new();
        }
        result
    }

    /// Closes the write side (best effort).
    pub async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// A TCP stream that acknowledges received data at once (TCP_QUICKACK
/// after every read).
///
/// A client that writes a literal and then its closing CRLF in two
/// sends (python's imaplib does) with Nagle's algorithm on waits for our
/// ACK of the literal before sending the CRLF, and Linux delays that ACK
/// by 40 ms in request/response traffic: every APPEND took 44 ms. Quick
/// ACKs make it 1 ms. Linux drops quickack mode by itself, hence the
/// setsockopt after each read (one cheap syscall).
pub struct QuickAck(TcpStream);

impl QuickAck {
    pub fn new(stream: TcpStream) -> Self {
        QuickAck(stream)
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            // Best effort: failing only costs the delay back.
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        r
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` until shutdown. Each admitted
/// connection runs `session` in its own task, inside a log span naming the
/// protocol, a connection number and the client; one over the limits gets
/// the bytes `refusal` makes and is closed.
pub async fn accept_loop<R, F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    limits: ConnectionLimits,
    tracker: ConnectionTracker,
    mut shutdown: Shutdown,
    refusal: R,
    session: F,
) where
    R: Fn(Refusal) -> Vec<u8>,
    F: Fn(TcpStream, SocketAddr, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(protocol, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match tracker.admit(peer.ip(), limits) {
            Ok(guard) => {
                let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("conn", protocol, conn, client = %peer);
                let run = session(stream, peer, shutdown.clone());
                tokio::spawn(
                    async move {
                        tracing::info!("connect");
                        run.await;
                        tracing::info!("disconnect");
                        drop(guard);
                    }
                    .instrument(span),
                );
            }
            Err(why) => {
                tracing::info!(protocol, client = %peer, reason = ?why, "connection refused");
                let bytes = refusal(why);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
}

/// The text of a refusal, for every protocol's own reply format.
pub fn refusal_text(why: Refusal) -> &'static str {
    match why {
        Refusal::TooManyTotal => "Too many connections, try again later",
        Refusal::TooManyFromAddress => "Too many connections from your address",
    }
}

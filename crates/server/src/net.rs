//! What every protocol's driver and listener share: listener roles, one
//! buffered stream with timeouts on every read and write that can upgrade
//! to TLS, and the accept loop that applies the connection limits (SPEC 8),
//! numbers connections for the logs, and stops at shutdown. Protocol rules
//! stay in each protocol's session.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
pub use tokio::time::Instant;
use tracing::Instrument;

use crate::conn::{ConnectionGuard, ConnectionLimits, ConnectionTracker, Refusal};
use crate::shutdown::Shutdown;
use crate::tls::{Alpn, Tls, TlsInfo};

/// An output buffer grown past this by a large reply is freed after the
/// flush, so an idle session does not keep it.
pub const KEEP_OUTPUT_CAPACITY: usize = 128 * 1024;
/// How long a refused client gets to read its refusal.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off after a failed accept (out of file descriptors and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Numbers connections of every protocol for the logs.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The deadline of a command (or DATA phase) that starts now.
pub fn deadline(limit: Duration) -> Instant {
    Instant::now() + limit
}

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed or the socket failed.
    Gone,
    /// A read or write timed out.
    Timeout,
}

/// What a listener serves (SPEC 1-3). Sessions read their role rather
/// than flags scattered over configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from the world; STARTTLS offered, never required
    /// (RFC 3207 4).
    Mta,
    /// Port 587 (RFC 6409): STARTTLS.
    Submission,
    /// Port 465 (RFC 8314 3.3): implicit TLS.
    Submissions,
    /// Port 143: STARTTLS.
    Imap,
    /// Port 993 (RFC 8314 3.2): implicit TLS.
    Imaps,
    /// Port 110: STLS (RFC 2595).
    Pop3,
    /// Port 995 (RFC 8314 3.2): implicit TLS.
    Pop3s,
}

impl Role {
    /// True when TLS starts at connect, before any protocol byte.
    pub fn implicit_tls(self) -> bool {
        matches!(self, Role::Submissions | Role::Imaps | Role::Pop3s)
    }

    /// The name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Role::Mta => "smtp",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
            Role::Imap => "imap",
            Role::Imaps => "imaps",
            Role::Pop3 => "pop3",
            Role::Pop3s => "pop3s",
        }
    }

    /// The protocol family whose connection limits apply (SPEC 8: the
    /// `[smtp]`, `[pop3]` and `[imap]` limits cover every port of theirs).
    pub fn family(self) -> &'static str {
        match self {
            Role::Mta | Role::Submission | Role::Submissions => "smtp",
            Role::Imap | Role::Imaps => "imap",
            Role::Pop3 | Role::Pop3s => "pop3",
        }
    }

    /// The ALPN protocol its TLS negotiates.
    pub fn alpn(self) -> Alpn {
        match self {
            Role::Imap | Role::Imaps => Alpn::Imap,
            Role::Pop3 | Role::Pop3s => Alpn::Pop3,
            Role::Mta | Role::Submission | Role::Submissions => Alpn::None,
        }
    }
}

/// Any byte stream a session can run over: a TCP socket in production, an
/// in-memory pipe in tests.
pub trait RawStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> RawStream for T {}

/// A connection's stream: plaintext, or TLS over it once upgraded.
pub enum Stream {
    Plain(Box<dyn RawStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Box<dyn RawStream>>>),
    /// DEFLATE over either (IMAP COMPRESS, RFC 4978).
    Deflate(Box<crate::compress::Deflate>),
    /// Only while a handshake runs, or after one failed.
    Closed,
}

impl Stream {
    pub fn plain(s: impl RawStream) -> Stream {
        Stream::Plain(Box::new(s))
    }

    /// The session waits for its client: a compressed stream lets go of
    /// what it needs only while writing.
    fn idle(&mut self) {
        if let Stream::Deflate(d) = self {
            d.idle();
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Deflate(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, data),
            Stream::Deflate(s) => Pin::new(s).poll_write(cx, data),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Deflate(s) => Pin::new(s).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Deflate(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// How much an [`Io`] reads at a time.
#[derive(Debug, Clone, Copy)]
pub struct ReadChunks {
    /// Asked of the socket while data flows (a literal, DATA, a burst of
    /// pipelined commands).
    pub busy: u32,
    /// Held for the next read by a session with nothing buffered: most
    /// commands fit, and an idle connection stays small.
    pub idle: u32,
}

/// A stream with an input buffer (read in chunks, consumed by parsers) and
/// an output buffer (replies queued, then flushed in one write).
///
/// One type for every protocol (STYLE.md "Connections and upgrades"): the
/// STARTTLS of SMTP, POP3 and IMAP is [`Io::start_tls`], which drops every
/// buffered plaintext byte before the handshake.
pub struct Io {
    pub stream: Stream,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    pub out: Vec<u8>,
    chunks: ReadChunks,
    write_timeout: Duration,
    /// This connection's slot under the connection limits; released
    /// before the last reply is written, so a client that reconnects at
    /// once is not refused for its own closing connection.
    slot: Option<ConnectionGuard>,
}

impl Io {
    pub fn new(stream: Stream, chunks: ReadChunks, write_timeout: Duration) -> Self {
        Io {
            stream,
            buf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            chunks,
            write_timeout,
            slot: None,
        }
    }

    /// Holds the connection's slot until [`Io::release_slot`] or the end.
    pub fn hold_slot(&mut self, slot: ConnectionGuard) {
        self.slot = Some(slot);
    }

    /// Gives the connection's slot back (before a final 221 / BYE / +OK).
    pub fn release_slot(&mut self) {
        self.slot = None;
    }

    /// The bytes received and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Replaces `range` of the pending bytes with `with`: the IMAP driver
    /// takes a streamed literal out of a command and puts `{0}` in its
    /// announcement's place (issue 19).
    pub fn splice_pending(&mut self, range: std::ops::Range<usize>, with: &[u8]) {
        let end = self.pos.saturating_add(range.end).min(self.buf.len());
        let start = self.pos.saturating_add(range.start).min(end);
        self.buf.splice(start..end, with.iter().copied());
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    /// Reads more bytes, waiting until `deadline` at most. The deadline
    /// belongs to the whole command (or DATA phase), not to one read, so a
    /// client dripping an octet at a time cannot hold a command open past
    /// its timeout (RFC 5321 4.5.3.2). The caller consumes what it parsed
    /// before asking for more, so the buffer holds at most one unparsed
    /// command (bounded by the parser) plus one read. With nothing buffered
    /// the session is between commands: it keeps only a small buffer while
    /// it waits, maybe for minutes.
    pub async fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        self.compact();
        let chunk = if self.buf.is_empty() {
            if self.buf.capacity() > self.chunks.idle as usize {
                self.buf = Vec::new();
            }
            self.stream.idle();
            self.chunks.idle as usize
        } else {
            self.chunks.busy as usize
        };
        self.read(chunk, deadline).await
    }

    /// Reads more bytes in full chunks (message data streaming in), until
    /// `deadline` at most.
    pub async fn fill_data(&mut self, deadline: Instant) -> Result<(), End> {
        self.compact();
        self.read(self.chunks.busy as usize, deadline).await
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    async fn read(&mut self, chunk: usize, deadline: Instant) -> Result<(), End> {
        self.buf.reserve(chunk);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
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
        let result = write_all(&mut self.stream, &self.out, self.write_timeout).await;
        self.out.clear();
        if self.out.capacity() > KEEP_OUTPUT_CAPACITY {
            self.out = Vec::new();
        }
        result
    }

    /// Writes `bytes` at once, bypassing the output queue (which must be
    /// empty), waiting at most the write timeout.
    pub async fn write_now(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.flush().await?;
        write_all(&mut self.stream, bytes, self.write_timeout).await
    }

    /// Closes the write side (best effort; TLS sends close_notify).
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
    }

    /// Compresses the connection from here on (IMAP COMPRESS=DEFLATE, RFC
    /// 4978 3), over plaintext or TLS, after the OK has been flushed
    /// uncompressed. Octets already buffered after the COMPRESS command
    /// are the client's first compressed ones, so they move into the
    /// inflater rather than being dropped or read as plaintext.
    pub fn start_deflate(&mut self) {
        let inner = std::mem::replace(&mut self.stream, Stream::Closed);
        let pending = self.pending().to_vec();
        self.buf = Vec::new();
        self.pos = 0;
        self.stream = Stream::Deflate(Box::new(crate::compress::Deflate::new(inner, &pending)));
    }

    /// Starts TLS on this connection: implicit TLS at connect, or after a
    /// STARTTLS reply has been flushed. Every byte buffered before the
    /// handshake is discarded (RFC 3207 4.2, RFC 2595 4, RFC 9051 6.2.1):
    /// a command pipelined behind STARTTLS is never executed
    /// (CVE-2011-0411). On failure the connection is unusable.
    pub async fn start_tls(&mut self, tls: &Tls, role: Role) -> Result<TlsInfo, End> {
        self.buf = Vec::new();
        self.pos = 0;
        self.out.clear();
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(End::Gone);
        };
        let accept = tls.acceptor(role.alpn()).accept(plain);
        match tokio::time::timeout(tls.handshake_timeout, accept).await {
            Ok(Ok(stream)) => {
                let info = Tls::info(&stream);
                self.stream = Stream::Tls(Box::new(stream));
                Ok(info)
            }
            Ok(Err(e)) => {
                handshake_failed(role, &e.to_string());
                Err(End::Gone)
            }
            Err(_) => {
                handshake_failed(role, "timed out");
                Err(End::Timeout)
            }
        }
    }
}

async fn write_all(stream: &mut Stream, bytes: &[u8], limit: Duration) -> Result<(), End> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Err(_) => Err(End::Timeout),
        Ok(Err(_)) => Err(End::Gone),
        Ok(Ok(())) => Ok(()),
    }
}

/// Handshake failures logged per second at most: garbage instead of a
/// ClientHello is cheap to send, and the log must not become the attack.
const HANDSHAKE_LOGS_PER_SECOND: u64 = 10;
static HANDSHAKE_LOG_SECOND: AtomicU64 = AtomicU64::new(0);
static HANDSHAKE_LOG_COUNT: AtomicU64 = AtomicU64::new(0);
static HANDSHAKE_LOG_SUPPRESSED: AtomicU64 = AtomicU64::new(0);

fn handshake_failed(role: Role, why: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if HANDSHAKE_LOG_SECOND.swap(now, Ordering::Relaxed) != now {
        HANDSHAKE_LOG_COUNT.store(0, Ordering::Relaxed);
    }
    if HANDSHAKE_LOG_COUNT.fetch_add(1, Ordering::Relaxed) < HANDSHAKE_LOGS_PER_SECOND {
        let suppressed = HANDSHAKE_LOG_SUPPRESSED.swap(0, Ordering::Relaxed);
        tracing::info!(
            role = role.name(),
            error = %why.escape_debug(),
            suppressed,
            "TLS handshake failed"
        );
    } else {
        HANDSHAKE_LOG_SUPPRESSED.fetch_add(1, Ordering::Relaxed);
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
            quickack(&self.0);
        }
        r
    }
}

/// Best effort: failing only costs the delay back.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(mailroom_no_quickack)
))]
fn quickack(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

/// TCP_QUICKACK is Linux's; elsewhere (and with `--cfg
/// mailroom_no_quickack`, which CI builds to keep this path compiling)
/// the delayed ACK stays.
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(mailroom_no_quickack)
)))]
fn quickack(_stream: &TcpStream) {}

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

/// A bound socket and what it serves.
pub struct Listener {
    pub socket: TcpListener,
    pub role: Role,
}

/// An admitted connection, handed to its protocol's driver.
pub struct Conn {
    pub stream: Stream,
    pub peer: SocketAddr,
    pub role: Role,
    /// The connection's slot under the limits (None in tests).
    pub slot: Option<ConnectionGuard>,
}

impl Conn {
    /// A connection without a slot (session tests over in-memory pipes).
    pub fn test(stream: impl RawStream, peer: SocketAddr, role: Role) -> Conn {
        Conn {
            stream: Stream::plain(stream),
            peer,
            role,
            slot: None,
        }
    }

    /// The buffered stream for the driver, holding the slot.
    pub fn into_io(self, chunks: ReadChunks, write_timeout: Duration) -> (Io, SocketAddr, Role) {
        let mut io = Io::new(self.stream, chunks, write_timeout);
        if let Some(slot) = self.slot {
            io.hold_slot(slot);
        }
        (io, self.peer, self.role)
    }
}

/// Accepts connections on `listener` until shutdown. Each admitted
/// connection runs `session` in its own task, inside a log span naming the
/// role, a connection number and the client. One over the limits gets the
/// bytes `refusal` makes and is closed; on an implicit-TLS port it is
/// closed without a word, since a refusal must be sent inside TLS or not
/// at all. Clients in `exempt` (SPEC 7 `local_networks`) are not held to
/// the per-address limit, as Postfix exempts `mynetworks`; the total limit
/// applies to everyone.
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop<R, F, Fut>(
    listener: Listener,
    limits: ConnectionLimits,
    exempt: &[IpNet],
    tracker: ConnectionTracker,
    mut shutdown: Shutdown,
    refusal: R,
    session: F,
) where
    R: Fn(Refusal) -> Vec<u8>,
    F: Fn(Conn, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let role = listener.role;
    let protocol = role.name();
    loop {
        let accepted = tokio::select! {
            r = listener.socket.accept() => r,
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
        let local = exempt.iter().any(|n| n.contains(&peer.ip()));
        match tracker.admit(role.family(), peer.ip(), limits, local) {
            Ok(guard) => {
                let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("conn", protocol, conn, client = %peer);
                let run = session(
                    Conn {
                        stream: Stream::plain(QuickAck::new(stream)),
                        peer,
                        role,
                        slot: Some(guard),
                    },
                    shutdown.clone(),
                );
                tokio::spawn(
                    async move {
                        tracing::info!("connect");
                        run.await;
                        tracing::info!("disconnect");
                    }
                    .instrument(span),
                );
            }
            Err(why) => {
                tracing::info!(protocol, client = %peer, reason = ?why, "connection refused");
                let bytes = if role.implicit_tls() {
                    Vec::new()
                } else {
                    refusal(why)
                };
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

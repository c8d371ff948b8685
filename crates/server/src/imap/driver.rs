//! Runs one IMAP session over an async byte stream (so TLS drops in
//! later). The driver owns the socket and the buffers; the session owns
//! the rules.
//!
//! Input is cut into commands by the sans-I/O framer, which asks for
//! continuation requests for synchronising literals and enforces the line
//! and literal limits. Every read has the inactivity timeout (RFC 9051
//! 5.4); IDLE (RFC 2177, RFC 9051 6.3.13) waits on the socket and on the
//! selected mailbox's change notification at once, with no polling.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use proto_imap::command::parse_command;
use proto_imap::framer::MAX_LINE;
use proto_imap::{Code, Frame, Framer, FramerLimits, Response, Status, Tag};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::config::WRITE_TIMEOUT;
use super::session::{Flow, ImapContext, ImapError, Out, Session, Sink, tagged};
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read while data is flowing.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes held for the next read by a session with nothing buffered: most
/// commands fit, and an idle connection stays small (issue 5: 100 000 idle
/// connections in a few GiB).
const IDLE_READ_CHUNK: usize = 512;

/// Why the session ended.
#[derive(Debug)]
enum End {
    Gone,
    Timeout,
    Shutdown,
    /// Closed on purpose (LOGOUT, a fatal protocol error): nothing more.
    Done,
}

impl From<ImapError> for End {
    fn from(_: ImapError) -> Self {
        End::Gone
    }
}

/// The socket as the session's response sink.
struct Conn<S> {
    stream: S,
}

impl<S: AsyncWrite + Unpin + Send> Sink for Conn<S> {
    fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let write = async {
                self.stream.write_all(bytes).await?;
                self.stream.flush().await
            };
            matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
        })
    }
}

async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), End> {
    // An idle session (IDLE, or between commands) waits here for minutes:
    // with nothing buffered it holds only IDLE_READ_CHUNK, not a full read
    // chunk; a busy one reads in READ_CHUNK pieces.
    if buf.is_empty() && buf.capacity() > IDLE_READ_CHUNK {
        *buf = Vec::new();
    }
    buf.reserve(if buf.is_empty() {
        IDLE_READ_CHUNK
    } else {
        READ_CHUNK
    });
    match tokio::time::timeout(limit, stream.read_buf(buf)).await {
        Err(_) => Err(End::Timeout),
        Ok(Ok(0)) | Ok(Err(_)) => Err(End::Gone),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Serves one connection until LOGOUT, an error, a timeout or shutdown.
pub async fn run<S>(stream: S, peer: SocketAddr, ctx: Arc<ImapContext>, shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut session = Session::new(ctx, peer);
    let mut conn = Conn { stream };
    let greeting = session.greeting().to_bytes(&session.encoder());
    if !conn.send(&greeting).await {
        return;
    }
    let end = serve(&mut conn, &mut session, shutdown).await;
    let bye: Option<&[u8]> = match end {
        Err(End::Timeout) => Some(b"* BYE Autologout; idle for too long\r\n"),
        Err(End::Shutdown) => Some(b"* BYE [UNAVAILABLE] Server shutting down\r\n"),
        _ => None,
    };
    if let Some(bye) = bye {
        let _ = conn.send(bye).await;
    }
    let _ = conn.stream.shutdown().await;
}

fn bad(out: &mut Out<'_>, tag: Option<&str>, code: Option<Code>, text: &str) {
    match tag.and_then(Tag::new) {
        Some(t) => tagged(out, &t, Status::Bad, code, text),
        None => out.untagged(Status::Bad, code, text),
    }
}

async fn serve<S>(
    conn: &mut Conn<S>,
    session: &mut Session,
    mut shutdown: Shutdown,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let cfg = session.config().clone();
    let mut framer = Framer::new(FramerLimits {
        max_line: MAX_LINE,
        max_append_literal: cfg.max_literal_size,
        ..FramerLimits::default()
    });
    let mut inbuf: Vec<u8> = Vec::new();
    let mut errors: u32 = 0;
    loop {
        // Answer every whole command already buffered (pipelining).
        loop {
            let frame = framer.next(&inbuf);
            let enc = session.encoder();
            let mut out = Out::new(conn, enc);
            match frame {
                Frame::Incomplete => break,
                Frame::Continue => {
                    out.push(&Response::Continue("Ready for literal data".into()));
                    out.flush().await?;
                    break;
                }
                Frame::LineTooLong { discard, done, tag } => {
                    inbuf.drain(..discard.min(inbuf.len()));
                    if done {
                        errors += 1;
                        bad(&mut out, tag.as_deref(), None, "Command line too long");
                        out.flush().await?;
                    }
                }
                Frame::LiteralTooBig { discard, sync, tag } => {
                    inbuf.drain(..discard.min(inbuf.len()));
                    errors += 1;
                    if sync {
                        // No "+" was sent: the client will not send it.
                        match tag.as_deref().and_then(Tag::new) {
                            Some(t) => tagged(
                                &mut out,
                                &t,
                                Status::No,
                                Some(Code::TooBig),
                                "Literal too large",
                            ),
                            None => {
                                out.untagged(Status::No, Some(Code::TooBig), "Literal too large")
                            }
                        }
                        out.flush().await?;
                    } else {
                        // The client is sending it anyway: we cannot resync.
                        bad(
                            &mut out,
                            tag.as_deref(),
                            Some(Code::TooBig),
                            "Literal too large, closing",
                        );
                        out.flush().await?;
                        return Err(End::Done);
                    }
                }
                Frame::Complete(n) => {
                    let parsed =
                        parse_command(inbuf.get(..n).unwrap_or_default(), session.parse_options());
                    inbuf.drain(..n.min(inbuf.len()));
                    match parsed {
                        Err(e) => {
                            errors += 1;
                            let text = format!("Syntax error: {}", e.message);
                            bad(&mut out, e.tag.as_ref().map(Tag::as_str), None, &text);
                        }
                        Ok(cmd) => match session.apply(cmd, &mut out).await? {
                            Flow::Continue => {}
                            Flow::Close => {
                                out.flush().await?;
                                return Err(End::Done);
                            }
                            Flow::Idle(tag) => {
                                out.push(&Response::Continue("idling".into()));
                                out.flush().await?;
                                drop(out);
                                idle(conn, session, &tag, &mut inbuf, &mut shutdown).await?;
                                continue;
                            }
                            Flow::Sasl(tag) => {
                                out.push(&Response::Continue(String::new()));
                                out.flush().await?;
                                drop(out);
                                let line = read_line(conn, &mut inbuf, cfg.idle_timeout).await?;
                                let mut out = Out::new(conn, session.encoder());
                                match line {
                                    Some(l) => session.sasl_response(&tag, &l, &mut out).await?,
                                    None => tagged(
                                        &mut out,
                                        &tag,
                                        Status::Bad,
                                        None,
                                        "Response too long",
                                    ),
                                }
                                out.flush().await?;
                                continue;
                            }
                        },
                    }
                    if errors >= cfg.max_errors {
                        out.untagged(Status::Bye, None, "Too many errors, closing connection");
                        out.flush().await?;
                        return Err(End::Done);
                    }
                    out.flush().await?;
                    if shutdown.is_triggered() {
                        return Err(End::Shutdown);
                    }
                }
            }
        }
        tokio::select! {
            r = fill(&mut conn.stream, &mut inbuf, cfg.idle_timeout) => r?,
            _ = shutdown.wait() => return Err(End::Shutdown),
        }
    }
}

/// Reads one line (for AUTHENTICATE); None if it is too long.
async fn read_line<S>(
    conn: &mut Conn<S>,
    inbuf: &mut Vec<u8>,
    limit: Duration,
) -> Result<Option<Vec<u8>>, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    loop {
        if let Some(nl) = inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = inbuf.drain(..=nl).collect();
            if line.len() > MAX_LINE {
                return Ok(None);
            }
            return Ok(Some(line));
        }
        if inbuf.len() > MAX_LINE {
            return Err(End::Done);
        }
        fill(&mut conn.stream, inbuf, limit).await?;
    }
}

/// IDLE until DONE: changes to the selected mailbox are sent as they
/// happen (within the hub's latency, well under a second).
async fn idle<S>(
    conn: &mut Conn<S>,
    session: &mut Session,
    tag: &Tag,
    inbuf: &mut Vec<u8>,
    shutdown: &mut Shutdown,
) -> Result<(), End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limit = session.config().idle_timeout;
    loop {
        if let Some(nl) = inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = inbuf.drain(..=nl).collect();
            let mut out = Out::new(conn, session.encoder());
            if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                tagged(&mut out, tag, Status::Ok, None, "IDLE terminated");
            } else {
                tagged(&mut out, tag, Status::Bad, None, "Expected DONE");
            }
            out.flush().await?;
            return Ok(());
        }
        if inbuf.len() > MAX_LINE {
            return Err(End::Done);
        }
        tokio::select! {
            r = fill(&mut conn.stream, inbuf, limit) => r?,
            _ = session.changed() => {
                let mut out = Out::new(conn, session.encoder());
                session.sync(&mut out, true, false).await?;
                out.flush().await?;
            }
            _ = shutdown.wait() => return Err(End::Shutdown),
        }
    }
}

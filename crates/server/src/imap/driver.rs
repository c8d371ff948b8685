//! Runs one IMAP session over an async byte stream (so TLS drops in
//! later). The driver owns the socket and the buffers; the session owns
//! the rules.
//!
//! Input is cut into commands by the sans-I/O framer, which asks for
//! continuation requests for synchronising literals and enforces the line
//! and literal limits. Every command has the inactivity timeout (RFC 9051
//! 5.4); IDLE (RFC 2177, RFC 9051 6.3.13) waits on the socket and on the
//! selected mailbox's change notification at once, with no polling.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use proto_imap::command::parse_command;
use proto_imap::framer::{LITERAL_MINUS_MAX, MAX_LINE, PRE_AUTH_LITERAL_MAX};
use proto_imap::{Code, Frame, Framer, FramerLimits, Response, Status, Tag};

use super::config::WRITE_TIMEOUT;
use super::context::ImapContext;
use super::error::ImapError;
use super::out::{Out, Sink, tagged};
use super::session::{Flow, Session, Wake};
use crate::net::{self, Conn, Instant, Io, ReadChunks};
use crate::sasl::MAX_SASL_RESPONSE;
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read: full chunks while data flows (a
/// literal); with nothing buffered only the small one, so an idle
/// connection stays small (issue 5: 100 000 idle connections in a few GiB).
const READ_CHUNKS: ReadChunks = ReadChunks {
    busy: 16 * 1024,
    idle: 512,
};

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

impl From<net::End> for End {
    fn from(e: net::End) -> Self {
        match e {
            net::End::Gone => End::Gone,
            net::End::Timeout => End::Timeout,
        }
    }
}

/// The connection as the session's response sink.
impl Sink for Io {
    fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { self.write_now(bytes).await.is_ok() })
    }
}

/// Applies one command and records its server time in the metrics (IDLE
/// and AUTHENTICATE until their first turn).
async fn timed_apply(
    session: &mut Session,
    cmd: proto_imap::command::Command,
    out: &mut Out<'_>,
) -> Result<Flow, ImapError> {
    let (name, started) = (cmd.kind.name(), std::time::Instant::now());
    let flow = session.apply(cmd, out).await;
    session.ctx.metrics.command("imap", name, started.elapsed());
    flow
}

async fn fill(io: &mut Io, until: Instant) -> Result<(), End> {
    Ok(io.fill(until).await?)
}

/// Serves one connection until LOGOUT, an error, a timeout or shutdown.
pub fn run(
    conn: Conn,
    ctx: Arc<ImapContext>,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    // Set up outside the future, so a session's future holds its buffers
    // and not also the connection they were made from (idle memory).
    let (mut io, peer, role) = conn.into_io(READ_CHUNKS, WRITE_TIMEOUT);
    let mut session = Session::new(Arc::clone(&ctx), peer).with_role(role);
    async move {
        // RFC 8314 3.2: on the IMAPS port TLS comes first, then the greeting.
        if role.implicit_tls() {
            let Some(tls) = ctx.tls.as_deref() else {
                tracing::warn!("no TLS certificate: closing implicit-TLS connection");
                return;
            };
            match Box::pin(io.start_tls(tls, role)).await {
                Ok(info) => session.tls_started(info),
                Err(_) => return,
            }
        }
        let greeting = session.greeting().to_bytes(&session.encoder());
        if io.write_now(&greeting).await.is_err() {
            return;
        }
        let end = serve(&mut io, &mut session, shutdown).await;
        let bye: Option<&[u8]> = match end {
            Err(End::Timeout) => Some(b"* BYE Autologout; idle for too long\r\n"),
            Err(End::Shutdown) => Some(b"* BYE [UNAVAILABLE] Server shutting down\r\n"),
            _ => None,
        };
        if let Some(bye) = bye {
            io.release_slot();
            let _ = io.write_now(bye).await;
        }
        io.close().await;
    }
}

fn bad(out: &mut Out<'_>, tag: Option<&str>, code: Option<Code>, text: &str) {
    match tag.and_then(Tag::new) {
        Some(t) => tagged(out, &t, Status::Bad, code, text),
        None => out.untagged(Status::Bad, code, text),
    }
}

async fn serve(io: &mut Io, session: &mut Session, mut shutdown: Shutdown) -> Result<(), End> {
    let cfg = session.config().clone();
    let mut framer = new_framer(&cfg);
    let mut errors: u32 = 0;
    // When the command being received (literals included) must be
    // complete: the autologout timer bounds a command, not each read.
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every whole command already buffered (pipelining).
        loop {
            // The session may have logged in with the last command.
            let logged_in = session.state() != super::session::StateKind::NotAuthenticated;
            framer.set_limits(framer_limits(&cfg, logged_in));
            let frame = framer.next(io.pending());
            // A big APPEND literal is taken out of the stream into the
            // spool (issue 19), then the command is framed again with an
            // empty literal in its place.
            if let Frame::Stream {
                announce,
                data,
                size,
                sync,
                tag,
            } = frame
            {
                let literal = Literal {
                    announce,
                    data,
                    size,
                    sync,
                    tag,
                };
                // A refusal for want of memory is no protocol error of
                // the client's: it does not count towards max_errors.
                if !stream_literal(io, session, &cfg, literal).await? {
                    framer.restart();
                    deadline = None;
                }
                continue;
            }
            // A command ends complete, or refused whole.
            if matches!(
                frame,
                Frame::Complete(_)
                    | Frame::LineTooLong { done: true, .. }
                    | Frame::LiteralTooBig { .. }
            ) {
                deadline = None;
            }
            // What the frame used up leaves the buffer before any reply.
            let parsed = match &frame {
                Frame::LineTooLong { discard, .. } | Frame::LiteralTooBig { discard, .. } => {
                    io.consume(*discard);
                    None
                }
                Frame::Complete(n) => {
                    let p = parse_command(
                        io.pending().get(..*n).unwrap_or_default(),
                        session.parse_options(),
                    );
                    io.consume(*n);
                    Some(p)
                }
                Frame::Incomplete | Frame::Continue | Frame::Stream { .. } => None,
            };
            let enc = session.encoder();
            let mut out = Out::new(io, enc);
            match frame {
                Frame::Incomplete | Frame::Stream { .. } => break,
                Frame::Continue => {
                    out.push(&Response::Continue("Ready for literal data".into()));
                    out.flush().await?;
                    break;
                }
                Frame::LineTooLong { done, tag, .. } => {
                    if done {
                        errors += 1;
                        bad(&mut out, tag.as_deref(), None, "Command line too long");
                        out.flush().await?;
                    }
                }
                Frame::LiteralTooBig { sync, tag, .. } => {
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
                Frame::Complete(_) => {
                    match parsed {
                        None => {}
                        // A mailbox that cannot exist: NO, as for any
                        // missing one (proto-imap ParseError::bad_name).
                        Some(Err(e)) if e.bad_name => match &e.tag {
                            Some(t) => tagged(&mut out, t, Status::No, None, e.message),
                            None => bad(&mut out, None, None, e.message),
                        },
                        Some(Err(e)) => {
                            errors += 1;
                            let text = format!("Syntax error: {}", e.message);
                            bad(&mut out, e.tag.as_ref().map(Tag::as_str), None, &text);
                        }
                        Some(Ok(cmd)) => match timed_apply(session, cmd, &mut out).await? {
                            Flow::Continue => {}
                            Flow::Close => {
                                // The slot goes back before the BYE and
                                // tagged OK are written.
                                let bytes = std::mem::take(&mut out.buf);
                                drop(out);
                                io.release_slot();
                                io.write_now(&bytes).await?;
                                return Err(End::Done);
                            }
                            Flow::Idle(tag) => {
                                out.push(&Response::Continue("idling".into()));
                                out.flush().await?;
                                drop(out);
                                idle(io, session, &tag, &mut shutdown).await?;
                                continue;
                            }
                            Flow::Sasl(tag) => {
                                // The session queued the challenge; each
                                // response may bring another (LOGIN).
                                out.flush().await?;
                                drop(out);
                                let mut tag = tag;
                                loop {
                                    let line = read_sasl_line(io, cfg.idle_timeout).await?;
                                    let mut out = Out::new(io, session.encoder());
                                    let next = session
                                        .sasl_response(&tag, line.as_deref(), &mut out)
                                        .await?;
                                    out.flush().await?;
                                    match next {
                                        Some(Flow::Sasl(t)) => tag = t,
                                        _ => break,
                                    }
                                }
                                continue;
                            }
                            Flow::Compress => {
                                // The OK goes out uncompressed (RFC 4978 3);
                                // what follows it in the buffer is already
                                // compressed (Io::start_deflate).
                                out.flush().await?;
                                drop(out);
                                io.start_deflate();
                                continue;
                            }
                            Flow::StartTls => {
                                out.flush().await?;
                                drop(out);
                                let Some(tls) = session.tls().cloned() else {
                                    return Err(End::Gone);
                                };
                                let info = Box::pin(io.start_tls(&tls, session.role())).await?;
                                session.tls_started(info);
                                // What followed STARTTLS in the buffer is
                                // gone (Io::start_tls); so is the framer's
                                // memory of it.
                                framer = new_framer(&cfg);
                                break;
                            }
                        },
                    }
                    // A streamed literal belongs to its command alone:
                    // APPEND took it, or it goes (with its memory) now.
                    session.streamed.clear();
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
        let until = *deadline.get_or_insert_with(|| net::deadline(cfg.idle_timeout));
        tokio::select! {
            r = fill(io, until) => r?,
            // RFC 5465 4: NOTIFY events go out between commands too.
            () = session.notify_ready(), if session.notifying() => {
                let mut out = Out::new(io, session.encoder());
                session.notify_deliver(&mut out, true, false).await?;
                out.flush().await?;
            }
            _ = shutdown.wait() => return Err(End::Shutdown),
        }
    }
}

/// A streamed APPEND literal, as the framer announced it.
struct Literal {
    announce: std::ops::Range<usize>,
    data: usize,
    size: u64,
    sync: bool,
    tag: Option<String>,
}

/// Takes a big APPEND literal out of the stream into a spool writer
/// (issue 19): in memory up to the threshold, then in a spool file, never
/// in the connection's buffer. Its memory comes from
/// `imap.max_inflight_literals`; when that is spent the APPEND is refused
/// `NO [UNAVAILABLE]` (false): before the "+" for a synchronising literal,
/// so the client does not send it; a non-synchronising one (LITERAL+,
/// RFC 7888) is read and dropped with the rest of its line, so the
/// connection stays in step and usable.
async fn stream_literal(
    io: &mut Io,
    session: &mut Session,
    cfg: &super::config::ImapConfig,
    literal: Literal,
) -> Result<bool, End> {
    let until = net::deadline(cfg.idle_timeout);
    let threshold = cfg.spool.as_ref().map_or(usize::MAX, |s| s.threshold());
    let need = usize::try_from(literal.size)
        .unwrap_or(usize::MAX)
        .min(threshold.saturating_add(4 * crate::spool::SPOOL_BUFFER));
    let mut reservation = cfg.literals.reservation();
    if !reservation.cover(need) {
        tracing::warn!(bytes = need, "imap: literal budget spent; refusing APPEND");
        io.consume(literal.data);
        if !literal.sync {
            discard_exact(io, literal.size, until).await?;
            discard_line(io, until).await?;
        }
        let mut out = Out::new(io, session.encoder());
        let text = "Too many messages in flight, try again later";
        match literal.tag.as_deref().and_then(Tag::new) {
            Some(t) => tagged(&mut out, &t, Status::No, Some(Code::Unavailable), text),
            None => out.untagged(Status::No, Some(Code::Unavailable), text),
        }
        out.flush().await?;
        return Ok(false);
    }
    if literal.sync {
        let mut out = Out::new(io, session.encoder());
        out.push(&Response::Continue("Ready for literal data".into()));
        out.flush().await?;
    }
    let mut writer = session.spool_writer();
    // The announcement becomes `{0}`: the data then starts earlier.
    let placeholder: &[u8] = b"{0}";
    let at = literal
        .data
        .saturating_sub(literal.announce.len())
        .saturating_add(placeholder.len());
    io.splice_pending(literal.announce, placeholder);
    let mut left = literal.size;
    loop {
        let avail = io.pending().len().saturating_sub(at) as u64;
        let take = usize::try_from(avail.min(left)).unwrap_or(0);
        if let Some(part) = io.pending().get(at..at + take) {
            writer.write(part);
        }
        io.splice_pending(at..at + take, b"");
        left -= take as u64;
        if left == 0 {
            break;
        }
        io.fill_data(until).await?;
    }
    session.streamed.push(super::session::Streamed {
        message: writer.finish(),
        _memory: reservation,
    });
    Ok(true)
}

/// Reads and drops `n` octets.
async fn discard_exact(io: &mut Io, mut n: u64, until: Instant) -> Result<(), End> {
    loop {
        let take = usize::try_from((io.pending().len() as u64).min(n)).unwrap_or(0);
        io.consume(take);
        n -= take as u64;
        if n == 0 {
            return Ok(());
        }
        io.fill_data(until).await?;
    }
}

/// Reads and drops the rest of a command line, at most `MAX_LINE`.
async fn discard_line(io: &mut Io, until: Instant) -> Result<(), End> {
    let mut seen = 0;
    loop {
        if let Some(nl) = io.pending().iter().position(|&b| b == b'\n') {
            io.consume(nl + 1);
            return Ok(());
        }
        seen += io.pending().len();
        let n = io.pending().len();
        io.consume(n);
        if seen > MAX_LINE {
            return Err(End::Done);
        }
        fill(io, until).await?;
    }
}

fn new_framer(cfg: &super::config::ImapConfig) -> Framer {
    Framer::new(framer_limits(cfg, false))
}

/// The literal limits: before login every literal is small
/// (`PRE_AUTH_LITERAL_MAX`); after it, APPEND may send `max_literal_size`.
fn framer_limits(cfg: &super::config::ImapConfig, logged_in: bool) -> FramerLimits {
    if logged_in {
        FramerLimits {
            max_line: MAX_LINE,
            max_append_literal: cfg.max_literal_size,
            // Every APPEND literal but the smallest is streamed, so the
            // literal budget sees them all (issue 19).
            stream_above: LITERAL_MINUS_MAX,
            ..FramerLimits::default()
        }
    } else {
        FramerLimits {
            max_line: MAX_LINE,
            max_literal: PRE_AUTH_LITERAL_MAX,
            max_append_literal: PRE_AUTH_LITERAL_MAX,
            stream_above: usize::MAX,
        }
    }
}

/// Takes one whole line from the buffer, if there is one.
fn take_line(io: &mut Io) -> Option<Vec<u8>> {
    let nl = io.pending().iter().position(|&b| b == b'\n')?;
    let line = io.pending().get(..=nl).unwrap_or_default().to_vec();
    io.consume(nl + 1);
    Some(line)
}

/// Reads one SASL response line; None if it is longer than the SASL
/// limit, which is discarded as it arrives (memory stays bounded).
async fn read_sasl_line(io: &mut Io, limit: Duration) -> Result<Option<Vec<u8>>, End> {
    let until = net::deadline(limit);
    let mut too_long = false;
    loop {
        if let Some(line) = take_line(io) {
            if too_long || line.len() > MAX_SASL_RESPONSE {
                return Ok(None);
            }
            return Ok(Some(line));
        }
        if io.pending().len() > MAX_SASL_RESPONSE {
            too_long = true;
            let n = io.pending().len();
            io.consume(n);
        }
        fill(io, until).await?;
    }
}

/// IDLE until DONE: changes to the selected mailbox and terminal messages
/// are sent as they happen (within the hub's latency, well under a
/// second).
async fn idle(
    io: &mut Io,
    session: &mut Session,
    tag: &Tag,
    shutdown: &mut Shutdown,
) -> Result<(), End> {
    // RFC 9051 5.4: an IDLE lasts at most the autologout timer; clients
    // renew it well before (RFC 2177: every 29 minutes).
    let until = net::deadline(session.config().idle_timeout);
    let keepalive = session.config().idle_keepalive;
    let mut next_keepalive = net::deadline(keepalive);
    loop {
        if let Some(line) = take_line(io) {
            let mut out = Out::new(io, session.encoder());
            if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                tagged(&mut out, tag, Status::Ok, None, "IDLE terminated");
            } else {
                tagged(&mut out, tag, Status::Bad, None, "Expected DONE");
            }
            out.flush().await?;
            return Ok(());
        }
        if io.pending().len() > MAX_LINE {
            return Err(End::Done);
        }
        tokio::select! {
            r = fill(io, until) => r?,
            wake = session.wake() => {
                let mut out = Out::new(io, session.encoder());
                if let Wake::Terminal(m) = wake {
                    // SPEC 1: at once while idling.
                    session.show_alert(&m, &mut out);
                    out.flush().await?;
                    continue;
                }
                if session.account_deleted() {
                    out.untagged(Status::Bye, None, super::session::ACCOUNT_DELETED);
                    out.flush().await?;
                    return Err(End::Done);
                }
                // The selected mailbox, and what NOTIFY watches.
                session.notify_deliver(&mut out, true, true).await?;
                out.flush().await?;
            }
            // A line now and then keeps NAT state alive; it is not
            // activity, so the autologout timer above still runs.
            _ = tokio::time::sleep_until(next_keepalive), if !keepalive.is_zero() => {
                let mut out = Out::new(io, session.encoder());
                out.untagged(Status::Ok, None, "Still here");
                out.flush().await?;
                next_keepalive = net::deadline(keepalive);
            }
            _ = shutdown.wait() => return Err(End::Shutdown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    #[tokio::test]
    async fn before_login_a_literal_is_at_most_8_kib_after_it_append_may_be_large() {
        let kit = Kit::new();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let mut input =
            b"a LOGIN {9000}\r\nb APPEND INBOX {9000}\r\nc LOGIN alice pw\r\nd APPEND INBOX {9000}\r\n"
                .to_vec();
        let mut message = b"Subject: big\r\n\r\n".to_vec();
        message.resize(9000, b'x');
        input.extend_from_slice(&message);
        input.extend_from_slice(b"\r\ne LOGOUT\r\n");
        let (out, _) = crate::testutil::drip(&input, b"", Duration::from_millis(10), |conn| {
            run(conn, ctx, shutdown)
        })
        .await;
        // Refused without a continuation (no octet of them is read), the
        // connection still serves the next command.
        assert!(
            out.contains("a NO [TOOBIG]") || out.contains("a BAD [TOOBIG]"),
            "{out}"
        );
        assert!(
            out.contains("b NO [TOOBIG]") || out.contains("b BAD [TOOBIG]"),
            "{out}"
        );
        assert!(out.contains("c OK"), "{out}");
        // Logged in: the same APPEND is read and stored.
        assert!(out.contains("d OK [APPENDUID"), "{out}");
        assert!(out.contains("e OK LOGOUT"), "{out}");
    }

    #[tokio::test]
    async fn idle_hears_a_keepalive_and_still_ends_at_done() {
        let kit = Kit::with(|c| c.idle_keepalive = Duration::from_millis(200));
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        // DONE arrives slowly (an octet every 100 ms): keepalives come
        // meanwhile, and the IDLE still ends normally.
        let (out, _) = crate::testutil::drip(
            b"a LOGIN alice pw\r\nb SELECT INBOX\r\nc IDLE\r\n",
            b"DONE\r\nd LOGOUT\r\n",
            Duration::from_millis(100),
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(out.contains("* OK Still here\r\n"), "{out}");
        assert!(out.contains("c OK IDLE terminated"), "{out}");
        assert!(out.contains("d OK LOGOUT"), "{out}");
    }

    #[tokio::test]
    async fn a_command_dripped_past_the_idle_timeout_gets_bye() {
        let kit = Kit::with(|c| c.idle_timeout = Duration::from_millis(500));
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let (out, sent) = crate::testutil::drip(
            b"",
            b"a LOGIN alice pw and a long dripped tail\r\n",
            Duration::from_millis(100),
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(out.contains("* BYE Autologout"), "{out}");
        assert!(sent < 15, "the command stayed open for {sent} octets");
    }

    #[tokio::test]
    async fn the_slot_is_released_before_the_final_bye_is_written() {
        let kit = Kit::new();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let held = crate::testutil::slot_held_during_final_reply(
            b"a LOGIN alice pw\r\nb LOGOUT\r\n",
            b"* BYE",
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(!held);
    }
}

//! Runs one SMTP session over an async byte stream. The driver owns the
//! socket and the buffers; the session owns the rules.
//!
//! Pipelining (RFC 2920): every complete command already in the buffer is
//! answered before the replies are flushed, so a pipelined group gets its
//! replies in one write. Every read has a timeout (RFC 5321 4.5.3.2); an
//! over-long line is discarded as it arrives and answered once; message
//! data past the size limit is counted but not kept.

use std::future::Future;
use std::sync::Arc;

use proto_smtp::{
    Command, DataReceiver, DataStatus, Line, LineSplitter, MAX_COMMAND_LINE, Reply, parse_command,
};

use super::session::{Action, Session, SmtpContext, reply};
use crate::net::{self, Conn, End, Instant, Io, ReadChunks};
use crate::sasl::MAX_SASL_RESPONSE;
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read: message data streams in full
/// chunks; between commands a session holds the small one.
const READ_CHUNKS: ReadChunks = ReadChunks {
    busy: 16 * 1024,
    idle: 1024,
};

/// Serves one connection until QUIT, an error, a timeout or shutdown.
pub fn run(
    conn: Conn,
    ctx: Arc<SmtpContext>,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    // Set up outside the future, so a session's future holds its buffers
    // and not also the connection they were made from (idle memory).
    let (mut io, peer, role) = conn.into_io(READ_CHUNKS, ctx.config.command_timeout);
    let mut session = Session::new(Arc::clone(&ctx), peer).with_role(role);
    async move {
        // RFC 8314 3.3: on the submissions port TLS comes first, then the
        // greeting, inside it.
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
        session.greeting().write_to(&mut io.out);
        let end = serve(&mut io, &mut session, shutdown).await;
        if let Err(End::Timeout) = end {
            // RFC 5321 4.5.3.2: on timeout the server closes, saying 421 first.
            reply(421, 4, 4, 2, "Timeout exceeded, closing connection").write_to(&mut io.out);
            let _ = io.flush().await;
        }
        io.close().await;
    }
}

/// The longest line the splitter keeps: commands up to the configured
/// limit, and AUTH with an initial response or a SASL response up to the
/// SASL limit (each command's own limit is checked in [`parse_line`]).
fn longest_line(session: &Session) -> usize {
    session
        .config()
        .max_line_length
        .max(MAX_COMMAND_LINE)
        .max(MAX_AUTH_LINE)
}

/// `AUTH <mechanism> <initial response>`: the response may be as long as
/// any SASL response (RFC 4954 4).
const MAX_AUTH_LINE: usize = MAX_SASL_RESPONSE + 64;

async fn serve(io: &mut Io, session: &mut Session, mut shutdown: Shutdown) -> Result<(), End> {
    let mut splitter = LineSplitter::new(longest_line(session));
    let mut errors: u32 = 0;
    let (command_timeout, max_errors) = (
        session.config().command_timeout,
        session.config().max_errors,
    );
    // When the command being received must be complete (RFC 5321
    // 4.5.3.2.7: the timeout bounds the command, not each read).
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every complete command already buffered (RFC 2920).
        loop {
            let (consumed, line) = splitter.next(io.pending());
            if line.is_some() {
                deadline = None;
            }
            if session.awaiting_sasl() {
                // A SASL response, not a command (RFC 4954 4).
                let response = match line {
                    None => {
                        io.consume(consumed);
                        break;
                    }
                    Some(Line::TooLong) => None,
                    Some(Line::Line(l)) => Some(l.to_vec()),
                };
                io.consume(consumed);
                let r = session.sasl_response(response.as_deref()).await;
                queue(io, &r);
                if r.code >= 500 {
                    errors += 1;
                }
                continue;
            }
            let max_line = session.config().max_line_length;
            let command = match line {
                None => {
                    io.consume(consumed);
                    break;
                }
                Some(Line::TooLong) => Err(line_too_long()),
                Some(Line::Line(l)) => Ok(parse_line(l, max_line).map_err(|r| (verb_of(l), r))),
            };
            io.consume(consumed);
            let started = Instant::now();
            // The verb for the metrics; `timed` is false when the command
            // recorded its own time (DATA: from the end of the data on).
            let mut verb = "other";
            let mut timed = true;
            let reply = match command {
                Err(r) => r,
                Ok(Err((v, r))) => {
                    verb = v;
                    r
                }
                Ok(Ok(cmd)) => {
                    verb = cmd.verb();
                    match session.apply(cmd).await {
                        Action::Reply(r) => r,
                        Action::Close(r) => {
                            io.release_slot();
                            queue(io, &r);
                            return io.flush().await;
                        }
                        Action::StartTls(r220) => {
                            queue(io, &r220);
                            io.flush().await?;
                            let Some(tls) = session.ctx.tls.clone() else {
                                return Err(End::Gone);
                            };
                            let info = Box::pin(io.start_tls(&tls, session.role)).await?;
                            session.tls_started(info);
                            // Whatever followed STARTTLS in the buffer is gone
                            // (Io::start_tls); the splitter starts afresh too.
                            splitter = LineSplitter::new(longest_line(session));
                            break;
                        }
                        Action::ReadData(r354) => {
                            queue(io, &r354);
                            io.flush().await?;
                            timed = false;
                            read_data(io, session).await?
                        }
                        Action::ReadChunk { size, last, refuse } => {
                            read_chunk(io, session, size, refuse.is_none()).await?;
                            // The chunk's own time: what the server did after
                            // its last octet came (for LAST: the commit).
                            let ended = Instant::now();
                            let r = match refuse {
                                Some(r) => r,
                                None => session.bdat_end(size, last).await,
                            };
                            session.ctx.metrics.command("smtp", verb, ended.elapsed());
                            timed = false;
                            r
                        }
                    }
                }
            };
            if timed {
                session.ctx.metrics.command("smtp", verb, started.elapsed());
            }
            if reply.code >= 400 {
                let status = reply
                    .enhanced
                    .map_or_else(|| reply.code.to_string(), |e| e.to_string());
                session.ctx.metrics.smtp_rejected(verb, status);
            }
            queue(io, &reply);
            if reply.code >= 500 {
                errors += 1;
                if errors >= max_errors {
                    queue(io, &reply_421_errors());
                    return io.flush().await;
                }
            }
            if shutdown.is_triggered() && !session.in_transaction() {
                queue(io, &shutting_down());
                return io.flush().await;
            }
        }
        io.flush().await?;
        // Wait for more input; an idle session (no transaction) leaves at
        // shutdown with 421, one in a transaction may finish it.
        let idle = !session.in_transaction();
        let until = *deadline.get_or_insert_with(|| net::deadline(command_timeout));
        tokio::select! {
            r = io.fill(until) => r?,
            _ = shutdown.wait(), if idle => {
                queue(io, &shutting_down());
                return io.flush().await;
            }
        }
    }
}

fn queue(io: &mut Io, r: &Reply) {
    r.write_to(&mut io.out);
}

fn line_too_long() -> Reply {
    reply(500, 5, 5, 2, "Line too long")
}

fn shutting_down() -> Reply {
    reply(421, 4, 3, 2, "Service shutting down, closing connection")
}

fn reply_421_errors() -> Reply {
    reply(421, 4, 7, 0, "Too many errors, closing connection")
}

/// Parses a command line, applying the 512-octet limit of RFC 5321
/// 4.5.3.1.4 to everything but MAIL and RCPT, whose ESMTP parameters may
/// make them longer (RFC 5321 4.5.3.1.4, RFC 1869) up to `max_line`, and
/// AUTH, whose initial response may be a whole SASL response.
fn parse_line(line: &[u8], max_line: usize) -> Result<Command, Reply> {
    let wire_len = line.len() + 2;
    if wire_len > max_line.max(MAX_COMMAND_LINE)
        && !line
            .get(..5)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"AUTH "))
    {
        return Err(line_too_long());
    }
    let cmd = parse_command(line).map_err(|e| e.reply())?;
    if let Command::Auth { .. } = cmd {
        return Ok(cmd);
    }
    let with_params = matches!(
        cmd,
        Command::Mail(_)
            | Command::Rcpt(_)
            | Command::Send(_)
            | Command::Soml(_)
            | Command::Saml(_)
    );
    if !with_params && line.len() + 2 > MAX_COMMAND_LINE {
        return Err(line_too_long());
    }
    Ok(cmd)
}

/// Reads the message after 354 up to CRLF.CRLF and hands it to the
/// session; the bytes after the terminator stay buffered (pipelining).
async fn read_data(io: &mut Io, session: &mut Session) -> Result<Reply, End> {
    // RFC 5321 4.5.3.2.6: the timeout bounds the whole DATA phase.
    let until = net::deadline(session.config().data_timeout);
    let mut rx = DataReceiver::new(session.config().max_message_size);
    // Past the threshold the message goes to a spool file as it arrives
    // (issue 19): the receiver hands on what it holds a chunk at a time.
    let mut spool = session.spool_writer();
    loop {
        let (consumed, status) = rx.feed(io.pending());
        io.consume(consumed);
        if !rx.too_large() && rx.stored() >= crate::spool::SPOOL_BUFFER {
            spool.write(&rx.drain());
        }
        // Account for what is held; past the server-wide budget the rest
        // of the message is discarded and refused with 452 4.3.1.
        if !rx.too_large() && !session.reserve(rx.stored() + spool.in_memory_len()) {
            rx.limit_to(0);
            spool.discard();
        }
        if let DataStatus::Done = status {
            break;
        }
        io.fill_data(until).await?;
    }
    let too_large = rx.too_large();
    if !too_large {
        spool.write(&rx.drain());
    }
    // DATA's time is the server's, from the final dot to the reply (the
    // commit), not the client's transfer.
    let ended = Instant::now();
    let r = session.finish_data(spool.finish(), too_large).await;
    session.ctx.metrics.command("smtp", "DATA", ended.elapsed());
    Ok(r)
}

/// The verbs the parser knows, for metrics labels of lines that did not
/// parse (a bounded set: anything else is "other").
const VERBS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "SEND", "SOML", "SAML", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN",
    "HELP", "NOOP", "QUIT", "STARTTLS", "AUTH",
];

fn verb_of(line: &[u8]) -> &'static str {
    let word = line.split(|b| *b == b' ').next().unwrap_or_default();
    VERBS
        .iter()
        .find(|v| v.as_bytes().eq_ignore_ascii_case(word))
        .copied()
        .unwrap_or("other")
}

/// Reads exactly `size` octets of a BDAT chunk; keeps them only when
/// `keep` (a refused chunk is still read, RFC 3030 2, so the stream stays
/// in step).
async fn read_chunk(io: &mut Io, session: &mut Session, size: u64, keep: bool) -> Result<(), End> {
    // The timeout bounds the whole chunk, as DATA's does.
    let until = net::deadline(session.config().data_timeout);
    let mut left = size;
    loop {
        let avail = io.pending().len() as u64;
        let take = usize::try_from(avail.min(left)).unwrap_or(0);
        if keep && let Some(part) = io.pending().get(..take) {
            session.bdat_append(part);
        }
        io.consume(take);
        left -= take as u64;
        if left == 0 {
            return Ok(());
        }
        io.fill_data(until).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testkit::Kit;
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    fn kit_with_timeouts() -> Kit {
        Kit::with(
            |c| {
                c.command_timeout = Duration::from_millis(500);
                c.data_timeout = Duration::from_millis(500);
            },
            None,
        )
    }

    #[tokio::test]
    async fn a_command_dripped_past_command_timeout_gets_421() {
        let kit = kit_with_timeouts();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        // 30 octets at 100 ms: 3 s, six times the timeout.
        let (out, sent) = crate::testutil::drip(
            b"EHLO client.test\r\n",
            b"NOOP and a long dripped tail\r\n",
            TICK,
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(out.contains("421 4.4.2"), "{out}");
        assert!(sent < 15, "the command stayed open for {sent} octets");
    }

    #[tokio::test]
    async fn data_dripped_past_data_timeout_gets_421() {
        let kit = kit_with_timeouts();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let (out, sent) = crate::testutil::drip(
            b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
            b"Subject: drip\r\n\r\nline after line after line\r\n.\r\n",
            TICK,
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(out.contains("354 "), "{out}");
        assert!(out.contains("421 4.4.2"), "{out}");
        assert!(sent < 20, "DATA stayed open for {sent} octets");
        assert!(kit.inbox(crate::testutil::ALICE).await.is_empty());
    }

    #[tokio::test]
    async fn the_slot_is_released_before_the_final_221_is_written() {
        let kit = Kit::new();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let held = crate::testutil::slot_held_during_final_reply(
            b"EHLO client.test\r\nQUIT\r\n",
            b"221 ",
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(!held);
    }
}

//! Runs one POP3 session over an async byte stream. The driver owns the
//! socket and the buffers; the session owns the rules.
//!
//! Pipelining (RFC 2449 6.6): every complete command already buffered is
//! answered, in order, before the output is flushed. Every read waits at
//! most the idle timeout (RFC 1939 3's autologout timer); an over-long
//! line is discarded as it arrives and answered once. A message goes out
//! dot-stuffed in chunks of [`WRITE_CHUNK`], each written before the next
//! is made, so one large RETR holds one copy of the message and a slow
//! reader only ever waits on its own socket.

use std::future::Future;
use std::sync::Arc;

use proto_pop3::{
    DotStuffer, Line, LineSplitter, MAX_COMMAND_LINE, RespCode, Response, parse_command,
    write_continuation, write_lines,
};

use super::session::{Action, Pop3Context, Session};
use crate::net::{self, Conn, End, Instant, Io, ReadChunks};
use crate::sasl::MAX_SASL_RESPONSE;
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read: POP3 commands are short, and an
/// idle session keeps the small buffer.
const READ_CHUNKS: ReadChunks = ReadChunks {
    busy: 4096,
    idle: 1024,
};
/// Output is written whenever this much is queued (a message is stuffed
/// into the queue in pieces of this size).
pub const WRITE_CHUNK: usize = 64 * 1024;

/// Writes when enough output is queued.
async fn flush_if_full(io: &mut Io) -> Result<(), End> {
    if io.out.len() >= WRITE_CHUNK {
        io.flush().await
    } else {
        Ok(())
    }
}

/// Queues a dot-stuffed message, writing as it goes, so one large RETR
/// holds one copy of the message.
async fn message(io: &mut Io, body: &[u8]) -> Result<(), End> {
    let mut stuffer = DotStuffer::new();
    for chunk in body.chunks(WRITE_CHUNK) {
        stuffer.push(chunk, &mut io.out);
        flush_if_full(io).await?;
    }
    stuffer.finish(&mut io.out);
    Ok(())
}

/// Queues a big message read from the store a chunk at a time (issue
/// 19), dot-stuffed, all of it or TOP's `lines`. A read that fails after
/// the `+OK` cannot be answered in the protocol: the connection ends.
async fn stream(
    io: &mut Io,
    store: &dyn store::Store,
    body: store::BodyId,
    lines: Option<u64>,
) -> Result<(), End> {
    let mut stuffer = DotStuffer::new();
    let mut cut = lines.map(proto_pop3::TopCut::new);
    let mut pos = 0u64;
    let mut chunk = Vec::new();
    loop {
        chunk = match store
            .read_body_range_into(body, pos, store::BODY_CHUNK, chunk)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "pop3: reading a message failed mid-way; closing");
                return Err(End::Gone);
            }
        };
        if chunk.is_empty() {
            break;
        }
        pos += chunk.len() as u64;
        let take = cut.as_mut().map_or(chunk.len(), |c| c.take(&chunk));
        for piece in chunk.get(..take).unwrap_or_default().chunks(WRITE_CHUNK) {
            stuffer.push(piece, &mut io.out);
            flush_if_full(io).await?;
        }
        if cut.as_ref().is_some_and(proto_pop3::TopCut::is_done) {
            break;
        }
    }
    stuffer.finish(&mut io.out);
    Ok(())
}

fn queue(io: &mut Io, r: &Response) {
    r.write_to(&mut io.out);
}

/// Serves one connection until QUIT, an error, a timeout or shutdown.
pub fn run(
    conn: Conn,
    ctx: Arc<Pop3Context>,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    // Set up outside the future, so a session's future holds its buffers
    // and not also the connection they were made from (idle memory).
    let idle = ctx.config.idle_timeout;
    let (mut io, peer, role) = conn.into_io(READ_CHUNKS, idle);
    let mut session = Session::new(Arc::clone(&ctx), peer).with_role(role);
    async move {
        // RFC 8314 3.2: on the POP3S port TLS comes first, then the greeting.
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
        queue(&mut io, &session.greeting());
        if let Err(End::Timeout) = serve(&mut io, &mut session, shutdown).await {
            // RFC 1939 3: the autologout timer closes the session without
            // entering UPDATE, so nothing is deleted.
            queue(&mut io, &Response::err("Autologout; idle for too long"));
            let _ = io.flush().await;
        }
        io.close().await;
        // Graceful shutdown waits for sessions, so the write ends before exit.
        session.wait_seen().await;
    }
}

async fn serve(io: &mut Io, session: &mut Session, mut shutdown: Shutdown) -> Result<(), End> {
    let mut splitter = LineSplitter::new(MAX_COMMAND_LINE);
    let mut bad_commands: u32 = 0;
    let max_bad = session.config().max_bad_commands;
    let idle = session.config().idle_timeout;
    // When the command being received must be complete: the autologout
    // timer (RFC 1939 3) bounds a command, not each read of it.
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every complete command already buffered (RFC 2449 6.6).
        loop {
            let sasl = session.awaiting_sasl();
            // SASL responses may be far longer than a command line.
            splitter.set_max_len(if sasl {
                MAX_SASL_RESPONSE
            } else {
                MAX_COMMAND_LINE
            });
            let (consumed, line) = splitter.next(io.pending());
            let Some(line) = line else {
                io.consume(consumed);
                break;
            };
            deadline = None;
            let action = match line {
                Line::TooLong if sasl => {
                    // The exchange cannot go on without the response.
                    let _ = session.sasl_response(b"*").await;
                    Action::Reply(Response::err("SASL response too long"))
                }
                Line::Line(l) if sasl => session.sasl_response(l).await,
                Line::TooLong => {
                    bad_commands += 1;
                    Action::Reply(Response::err("Line too long"))
                }
                Line::Line(l) => match parse_command(l) {
                    Ok(cmd) => {
                        let (name, started) = (cmd.name(), std::time::Instant::now());
                        let action = session.apply(cmd).await;
                        // RETR/TOP: the time to read the message and
                        // queue the response, not the client's reading.
                        session.ctx.metrics.command("pop3", name, started.elapsed());
                        action
                    }
                    Err(e) => {
                        bad_commands += 1;
                        Action::Reply(e.response())
                    }
                },
            };
            io.consume(consumed);
            match action {
                Action::Reply(r) => queue(io, &r),
                Action::Lines(r, lines) => {
                    queue(io, &r);
                    write_lines(&lines, &mut io.out);
                }
                Action::Message {
                    status,
                    body,
                    len,
                    seen,
                } => {
                    queue(io, &status);
                    message(io, body.get(..len).unwrap_or(&body)).await?;
                    if let Some(uid) = seen {
                        session.retrieved(uid);
                    }
                }
                Action::Stream {
                    status,
                    body,
                    lines,
                    seen,
                } => {
                    queue(io, &status);
                    let store = Arc::clone(&session.ctx.store);
                    stream(io, store.as_ref(), body, lines).await?;
                    if let Some(uid) = seen {
                        session.retrieved(uid);
                    }
                }
                Action::Continue(challenge) => write_continuation(&challenge, &mut io.out),
                Action::Close(r) => {
                    io.release_slot();
                    queue(io, &r);
                    return io.flush().await;
                }
                Action::StartTls(r) => {
                    queue(io, &r);
                    io.flush().await?;
                    let Some(tls) = session.ctx.tls.clone() else {
                        return Err(End::Gone);
                    };
                    let info = Box::pin(io.start_tls(&tls, session.role())).await?;
                    session.tls_started(info);
                    // What followed STLS in the buffer is gone
                    // (Io::start_tls); the splitter starts afresh too.
                    splitter = LineSplitter::new(MAX_COMMAND_LINE);
                    break;
                }
            }
            if bad_commands >= max_bad {
                queue(
                    io,
                    &Response::err("Too many bad commands, closing connection"),
                );
                return io.flush().await;
            }
            flush_if_full(io).await?;
        }
        io.flush().await?;
        // What RETR sent is now written: store its \Seen, once for a
        // whole pipelined group.
        session.store_seen().await;
        let until = *deadline.get_or_insert_with(|| net::deadline(idle));
        tokio::select! {
            r = io.fill(until) => r?,
            _ = shutdown.wait() => {
                // Commands run to completion above, so nothing is half
                // done here; no UPDATE: nothing is deleted.
                queue(io, &Response::err_code(RespCode::SysTemp, "Server shutting down"));
                return io.flush().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use std::net::SocketAddr;

    use super::super::testkit::Kit;
    use super::*;

    /// Runs a driver over an in-memory pipe; returns the client end.
    fn start(kit: &Kit, shutdown: Shutdown) -> (DuplexStream, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let ctx = Arc::clone(&kit.ctx);
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let conn = Conn::test(server, peer, crate::net::Role::Pop3);
        let task = tokio::spawn(run(conn, ctx, shutdown));
        (client, task)
    }

    async fn read_until(client: &mut DuplexStream, end: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !got.ends_with(end) {
            let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk))
                .await
                .expect("read timed out")
                .expect("read");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    #[tokio::test]
    async fn a_command_dripped_past_the_idle_timeout_gets_autologout() {
        let kit = Kit::with(|c| c.idle_timeout = Duration::from_millis(500));
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let (out, sent) = crate::testutil::drip(
            b"",
            b"USER alice and a long dripped tail\r\n",
            Duration::from_millis(100),
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(out.contains("-ERR Autologout"), "{out}");
        assert!(sent < 15, "the command stayed open for {sent} octets");
    }

    #[tokio::test]
    async fn the_slot_is_released_before_the_final_ok_is_written() {
        let kit = Kit::new();
        let ctx = Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = Shutdown::new();
        let held = crate::testutil::slot_held_during_final_reply(
            b"USER alice\r\nPASS pw\r\nQUIT\r\n",
            b"+OK Bye",
            |conn| run(conn, ctx, shutdown),
        )
        .await;
        assert!(!held);
    }

    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\n.one\r\n")
            .await;
        let (_trigger, shutdown) = Shutdown::new();
        let (mut c, task) = start(&kit, shutdown);
        c.write_all(b"USER alice\r\nPASS pw\r\nSTAT\r\nRETR 1\r\nLIST\r\nBOGUS\r\nQUIT\r\n")
            .await
            .unwrap();
        let got = read_until(&mut c, b"+OK Bye\r\n").await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "+OK mailroom POP3 server ready\r\n+OK\r\n+OK Logged in.\r\n+OK 1 14\r\n\
             +OK\r\nA: 1\r\n\r\n..one\r\n.\r\n+OK 1 messages (14 octets)\r\n1 14\r\n.\r\n\
             -ERR Unknown command\r\n+OK Bye\r\n"
        );
        task.await.unwrap();
        assert_eq!(kit.flags("alice@example.test").await, [true]);
    }

    #[tokio::test]
    async fn too_long_line_is_answered_once_and_the_session_goes_on() {
        let kit = Kit::new();
        let (_trigger, shutdown) = Shutdown::new();
        let (mut c, _task) = start(&kit, shutdown);
        let mut line = vec![b'x'; 10_000];
        line.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
        c.write_all(&line).await.unwrap();
        let got = read_until(&mut c, b"+OK Bye\r\n").await;
        let text = String::from_utf8_lossy(&got);
        assert_eq!(text.matches("-ERR Line too long").count(), 1, "{text}");
        assert!(text.contains("-ERR Not logged in"), "{text}");
    }

    #[tokio::test]
    async fn shutdown_answers_err_and_deletes_nothing() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let (trigger, shutdown) = Shutdown::new();
        let (mut c, task) = start(&kit, shutdown);
        c.write_all(b"USER alice\r\nPASS pw\r\nDELE 1\r\n")
            .await
            .unwrap();
        read_until(&mut c, b"deleted\r\n").await;
        trigger.trigger();
        let got = read_until(&mut c, b"\r\n").await;
        assert_eq!(got, b"-ERR [SYS/TEMP] Server shutting down\r\n");
        task.await.unwrap();
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn idle_session_is_logged_out_without_deleting() {
        let kit = Kit::with(|c| c.idle_timeout = Duration::from_millis(300));
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let (_trigger, shutdown) = Shutdown::new();
        let (mut c, task) = start(&kit, shutdown);
        c.write_all(b"USER alice\r\nPASS pw\r\nDELE 1\r\n")
            .await
            .unwrap();
        let got = read_until(&mut c, b"Autologout; idle for too long\r\n").await;
        assert!(String::from_utf8_lossy(&got).contains("message 1 deleted"));
        task.await.unwrap();
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn large_message_is_sent_whole_in_chunks() {
        let kit = Kit::new();
        let mut msg = b"Subject: big\r\n\r\n".to_vec();
        for i in 0..40_000 {
            msg.extend_from_slice(format!(".line {i}\r\n").as_bytes());
        }
        kit.deliver("alice@example.test", &msg).await;
        let (_trigger, shutdown) = Shutdown::new();
        let (mut c, _task) = start(&kit, shutdown);
        c.write_all(b"USER alice\r\nPASS pw\r\nRETR 1\r\n")
            .await
            .unwrap();
        let got = read_until(&mut c, b"\r\n.\r\n").await;
        let head = b"+OK Logged in.\r\n+OK\r\n";
        let start = got.windows(head.len()).position(|w| w == head).unwrap() + head.len();
        match proto_pop3::parse_multiline(&got[start..]) {
            proto_pop3::Parsed::Complete(back, _) => assert!(back == msg, "body differs"),
            proto_pop3::Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[tokio::test]
    async fn auth_plain_continuation_over_the_wire() {
        let kit = Kit::new();
        let (_trigger, shutdown) = Shutdown::new();
        let (mut c, _task) = start(&kit, shutdown);
        let resp = proto_pop3::encode_plain("", "alice", "pw");
        c.write_all(format!("AUTH PLAIN\r\n{resp}\r\nSTAT\r\n").as_bytes())
            .await
            .unwrap();
        let got = read_until(&mut c, b"+OK 0 0\r\n").await;
        assert!(
            String::from_utf8_lossy(&got).contains("+ \r\n+OK Logged in.\r\n"),
            "{got:?}"
        );
    }
}

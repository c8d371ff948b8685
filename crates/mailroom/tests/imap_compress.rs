//! COMPRESS=DEFLATE (RFC 4978) through the real binary: python's zlib
//! over a raw socket (plain and TLS), with a large FETCH, a partial flush
//! from the client, IDLE while compressed, and the errors.

mod common;
mod imap_kit;

use std::process::Command;

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

/// A minimal compressed IMAP client: zlib both ways once COMPRESS is OK.
const CLIENT: &str = r#"
import re, smtplib, socket, ssl, sys, zlib

class Z:
    def __init__(s, sock):
        s.sock, s.buf, s.c, s.d, s.wire = sock, b"", None, None, 0
    def start(s):
        s.c = zlib.compressobj(6, zlib.DEFLATED, -15)
        s.d = zlib.decompressobj(-15)
    def send(s, data, flush=zlib.Z_SYNC_FLUSH):
        if s.c:
            data = s.c.compress(data) + s.c.flush(flush)
        s.sock.sendall(data)
    def fill(s):
        chunk = s.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        s.wire += len(chunk)
        s.buf += s.d.decompress(chunk) if s.d else chunk
    def line(s):
        while b"\r\n" not in s.buf:
            s.fill()
        l, s.buf = s.buf.split(b"\r\n", 1)
        return l + b"\r\n"
    def until(s, tag):
        out = b""
        while True:
            l = s.line()
            out += l
            m = re.search(rb"\{(\d+)\}\r\n$", l)
            if m:
                n = int(m.group(1))
                while len(s.buf) < n:
                    s.fill()
                out += s.buf[:n]
                s.buf = s.buf[n:]
                continue
            if l.startswith(tag + b" "):
                return out
    def cmd(s, tag, text, flush=zlib.Z_SYNC_FLUSH):
        s.send(tag + b" " + text + b"\r\n", flush)
        return s.until(tag)

def connect(port, tls, cafile):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    z = Z(sock)
    assert z.line().startswith(b"* OK"), "greeting"
    return z

mode, port, smtp_port, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
z = connect(port, mode == "tls", cafile)
# Before login COMPRESS is not allowed.
r = z.cmd(b"p", b"COMPRESS DEFLATE")
assert b"p BAD" in r, r
r = z.cmd(b"a", b"LOGIN alice secret")
assert b"a OK" in r, r
r = z.cmd(b"c", b"CAPABILITY")
assert b"COMPRESS=DEFLATE" in r, r
# Bad arguments: BAD, compression still off.
for bad in [b"COMPRESS", b"COMPRESS LZW", b"COMPRESS DEFLATE extra"]:
    r = z.cmd(b"b", bad)
    assert r.startswith(b"b BAD"), (bad, r)
r = z.cmd(b"z", b"COMPRESS DEFLATE")
assert r.startswith(b"z OK"), r
z.start()
r = z.cmd(b"s", b"SELECT INBOX")
assert b"s OK" in r and b"* 3 EXISTS" in r, r
# A large FETCH: every octet arrives, compressed on the wire.
before = z.wire
r = z.cmd(b"f", b"FETCH 1:* (BODY.PEEK[])")
assert b"f OK" in r, r[-200:]
assert r.count(b"the quick brown fox") == 3 * 20000, r.count(b"the quick brown fox")
wire = z.wire - before
assert wire * 10 < len(r), (wire, len(r))
# A command ended with a partial flush (not a sync flush): answered, the
# server does not wait for more input to decode it.
r = z.cmd(b"n", b"NOOP", zlib.Z_PARTIAL_FLUSH)
assert b"n OK" in r, r
r = z.cmd(b"n2", b"NOOP", zlib.Z_PARTIAL_FLUSH)
assert b"n2 OK" in r, r
# COMPRESS again: NO [COMPRESSIONACTIVE], still compressed after.
r = z.cmd(b"y", b"COMPRESS DEFLATE")
assert r.startswith(b"y NO [COMPRESSIONACTIVE]"), r
# IDLE while compressed: new mail is pushed, then DONE ends it.
z.send(b"i IDLE\r\n")
assert z.line().startswith(b"+ "), "idle continuation"
s = smtplib.SMTP("127.0.0.1", smtp_port)
s.sendmail("sender@other.test", ["alice@example.test"], "Subject: during idle\r\n\r\nhi\r\n")
s.quit()
l = z.line()
while b"EXISTS" not in l:
    l = z.line()
assert l == b"* 4 EXISTS\r\n", l
z.send(b"DONE\r\n")
r = z.until(b"i")
assert b"i OK" in r, r
# A large APPEND upload, compressed: the literal streams through the
# inflater in bounded reads.
big = b"Subject: upload\r\n\r\n" + b"all work and no play\r\n" * 80000
r = z.cmd(b"u", b"APPEND INBOX {%d+}\r\n" % len(big) + big)
assert b"u OK [APPENDUID " in r, r
r = z.cmd(b"v", b"FETCH 5 (RFC822.SIZE)")
assert (b"RFC822.SIZE %d" % len(big)) in r, r
r = z.cmd(b"l", b"LOGOUT")
assert b"* BYE" in r and b"l OK" in r, r
print("ok", mode, wire)
"#;

fn big_message(i: usize) -> String {
    let body = "the quick brown fox jumps over the lazy dog\r\n".repeat(20000);
    simple_message(&format!("big {i}"), &body)
}

fn run_client(server: &Server, mode: &str, port: u16) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(mode)
        .arg(port.to_string())
        .arg(server.smtp.port().to_string())
        .arg(server.cert())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "compressed client ({mode}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compress_deflate_works_over_plaintext_and_tls() {
    let server = Server::start();
    for i in 0..3 {
        deliver(&server, "alice@example.test", &big_message(i));
    }
    run_client(&server, "plain", server.imap.port());
    // The IDLE and the upload above added two; the TLS run expects three.
    let mut m = Imap::login(&server, "alice", "secret");
    m.ok("SELECT INBOX");
    m.ok("STORE 4:* +FLAGS.SILENT (\\Deleted)");
    m.ok("EXPUNGE");
    m.ok("LOGOUT");
    run_client(&server, "tls", server.imaps.port());
}

#[test]
fn a_compressed_session_that_sends_garbage_is_closed_and_others_are_served() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut raw = std::net::TcpStream::connect(server.imap).expect("connect");
    raw.set_read_timeout(Some(common::WAIT)).expect("timeout");
    raw.write_all(b"a LOGIN alice secret\r\nb COMPRESS DEFLATE\r\n")
        .expect("write");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("b OK") {
        let n = raw.read(&mut chunk).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    // Not a DEFLATE stream: the server closes the connection (EOF or
    // reset), it neither hangs (a timeout is an error here) nor answers.
    raw.write_all(&[0xff; 64]).expect("write");
    match raw.read(&mut chunk) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("NOOP");
}

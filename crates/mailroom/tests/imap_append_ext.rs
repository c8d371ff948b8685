//! UTF8=ACCEPT (RFC 6855), MULTIAPPEND (RFC 3502), SAVEDATE (RFC 8514)
//! and CATENATE (RFC 4469) through the real binary, driven by python's
//! imaplib (raw commands where imaplib has no method).

mod common;
mod imap_kit;

use std::process::Command;

use common::Server;
use imap_kit::Imap;

/// imaplib helpers: `raw(M, bytes)` sends one command (LITERAL+ literals
/// inline) and returns (tagged line, untagged lines).
const PRELUDE: &str = r#"
import imaplib, sys
port = int(sys.argv[1])

def raw(M, text):
    tag = M._new_tag()
    M.send(tag + b" " + text + b"\r\n")
    lines = []
    while True:
        line = M.readline()
        if line.startswith(tag + b" "):
            return line, lines
        lines.append(line)

def login():
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login("alice", "secret")
    return M
"#;

fn run(server: &Server, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .arg(server.imap.port().to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "imaplib failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn utf8_accept_gives_utf8_names_strings_and_append() {
    let server = Server::start();
    run(
        &server,
        r#"
M = login()
typ, data = M.capability()
assert b"UTF8=ACCEPT" in data[0], data
# Before ENABLE: APPEND UTF8 is BAD.
tagged, _ = raw(M, b"APPEND INBOX UTF8 (~{12+}\r\nSubject: x\r\n)")
assert b" BAD " in tagged, tagged
typ, data = M.enable("UTF8=ACCEPT")
assert typ == "OK", data
typ, data = M.response("ENABLED")
assert data == [b"UTF8=ACCEPT"], data
# imaplib now sends UTF-8 (quoted); we answer in UTF-8, not modified UTF-7.
name = "K\u00fcche/T\u00f6pfe"
typ, data = M.create(name)
assert typ == "OK", data
typ, data = M.list("\"\"", "K*")
assert any(name.encode() in l for l in data), data
assert not any(b"&A" in l for l in data), data
typ, data = M.status(name, "(MESSAGES)")
assert typ == "OK" and name.encode() in data[0] and b"MESSAGES 0" in data[0], data
msg = "Subject: Gr\u00fc\u00dfe aus K\u00f6ln\r\nFrom: J\u00f6rg <j\u00f6rg@example.test>\r\n\r\nHallo\r\n".encode()
tagged, _ = raw(M, b'APPEND "' + name.encode() + b'" UTF8 (~{%d+}\r\n' % len(msg) + msg + b")")
assert b" OK [APPENDUID " in tagged, tagged
# UTF8 needs a literal8: a plain literal is BAD.
tagged, _ = raw(M, b"APPEND INBOX UTF8 ({12+}\r\nSubject: x\r\n)")
assert b" BAD " in tagged, tagged
typ, data = M.select(name)
assert typ == "OK" and data == [b"1"], data
# The header comes back raw, as stored.
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)")
assert "Gr\u00fc\u00dfe aus K\u00f6ln".encode() in data[0][1], data
# A UTF-8 quoted string in SEARCH.
tagged, lines = raw(M, 'SEARCH SUBJECT "K\u00f6ln"'.encode())
assert b" OK " in tagged and lines == [b"* SEARCH 1\r\n"], (tagged, lines)
M.logout()
# Another session, without ENABLE, sees modified UTF-7.
M = login()
typ, data = M.list("\"\"", "K*")
assert any(b"K&APw-che/T&APY-pfe" in l for l in data), data
M.logout()
print("ok")
"#,
    );
}

#[test]
fn multiappend_stores_all_or_nothing() {
    let server = Server::start();
    run(
        &server,
        r#"
M = login()
typ, data = M.capability()
assert b"MULTIAPPEND" in data[0], data
a = b"Subject: one\r\n\r\n1\r\n"
b = b"Subject: two\r\n\r\n2\r\n"
c = b"Subject: three\r\n\r\n3\r\n"
tagged, _ = raw(M, b"APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s \"07-Feb-1994 21:52:25 -0800\" {%d+}\r\n%s"
                % (len(a), a, len(b), b, len(c), c))
assert b" OK [APPENDUID " in tagged and b" 1:3] " in tagged, tagged
typ, data = M.status("INBOX", "(MESSAGES)")
assert b"MESSAGES 3" in data[0], data
# The third message is refused (an unknown system flag): none is kept.
tagged, _ = raw(M, b"APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s (\\Bogus) {%d+}\r\n%s"
                % (len(a), a, len(b), b, len(c), c))
assert b" BAD " in tagged, tagged
typ, data = M.status("INBOX", "(MESSAGES UIDNEXT)")
assert b"MESSAGES 3" in data[0] and b"UIDNEXT 4" in data[0], data
# A missing mailbox: TRYCREATE, nothing stored anywhere.
tagged, _ = raw(M, b"APPEND Nowhere {%d+}\r\n%s {%d+}\r\n%s" % (len(a), a, len(b), b))
assert b" NO [TRYCREATE]" in tagged, tagged
M.select("INBOX")
typ, data = M.fetch("1:3", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"\\Seen" in data[0][0] and b"Subject: one" in data[0][1], data
assert b"Subject: three" in data[4][1], data
M.logout()
print("ok")
"#,
    );
}

#[test]
fn savedate_is_when_a_message_was_saved_not_its_internaldate() {
    let server = Server::start();
    run(
        &server,
        r#"
import time
M = login()
typ, data = M.capability()
assert b"SAVEDATE" in data[0], data
today = time.strftime("%d-%b-%Y", time.gmtime())
msg = b"Subject: old\r\n\r\nx\r\n"
typ, data = M.append("INBOX", None, '"07-Feb-1994 21:52:25 -0800"', msg)
assert typ == "OK", data
M.select("INBOX")
typ, data = M.fetch("1", "(INTERNALDATE SAVEDATE)")
line = data[0].decode()
assert "INTERNALDATE \"08-Feb-1994 05:52:25 +0000\"" in line, line
saved = line.split("SAVEDATE \"")[1][:11].strip()
assert saved.lstrip("0") == today.lstrip("0"), (saved, today)
for key, want in [("SAVEDSINCE " + today, [b"1"]), ("SAVEDON " + today, [b"1"]),
                  ("SAVEDBEFORE " + today, [b""]), ("SINCE " + today, [b""]),
                  ("SAVEDATESUPPORTED", [b"1"]), ("SAVEDBEFORE 1-Jan-2000", [b""])]:
    typ, data = M.search(None, key)
    assert typ == "OK" and data == want, (key, data)
# A copy is saved now too, keeping the INTERNALDATE.
M.create("Kept")
M.copy("1", "Kept")
M.select("Kept")
typ, data = M.fetch("1", "(INTERNALDATE SAVEDATE)")
assert b"08-Feb-1994" in data[0] and today.encode()[-4:] in data[0].split(b"SAVEDATE")[1], data
tagged, _ = raw(M, b"SEARCH SAVEDBEFORE yesterday")
assert b" BAD " in tagged, tagged
M.logout()
print("ok")
"#,
    );
}

#[test]
fn catenate_builds_a_message_from_text_and_urls_or_appends_nothing() {
    let server = Server::start();
    run(
        &server,
        r#"
M = login()
typ, data = M.capability()
assert b"CATENATE" in data[0], data
src = b"Subject: source\r\nFrom: a@example.test\r\n\r\nthe original body\r\n"
typ, data = M.append("INBOX", None, None, src)
assert typ == "OK", data
typ, data = M.status("INBOX", "(UIDVALIDITY)")
v = data[0].split(b"UIDVALIDITY ")[1].rstrip(b")")
text = b"\r\nforwarded:\r\n"
tagged, _ = raw(M, b'APPEND Drafts (\\Draft) CATENATE (URL "/INBOX;UIDVALIDITY=' + v
                + b'/;UID=1/;SECTION=HEADER" TEXT {%d+}\r\n%s URL "/INBOX/;UID=1/;SECTION=TEXT")' % (len(text), text))
assert b" OK [APPENDUID " in tagged, tagged
M.select("Drafts")
typ, data = M.fetch("1", "(FLAGS BODY.PEEK[])")
assert b"\\Draft" in data[0][0], data
want = b"Subject: source\r\nFrom: a@example.test\r\n\r\n" + text + b"the original body\r\n"
assert data[0][1] == want, data
# A wrong UIDVALIDITY: NO [BADURL ...], nothing appended.
tagged, _ = raw(M, b'APPEND Drafts CATENATE (TEXT {3+}\r\nx\r\n URL "/INBOX;UIDVALIDITY=1/;UID=1")')
assert b" NO [BADURL /INBOX;UIDVALIDITY=1/;UID=1]" in tagged, tagged
typ, data = M.status("Drafts", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
M.logout()
print("ok")
"#,
    );
}

#[test]
fn streamed_literals_in_a_multiappend_and_a_catenate_are_each_kept() {
    // Issue 19: literals above the streaming size go to the spool as they
    // arrive; several in one MULTIAPPEND, or a big TEXT part of a
    // CATENATE, must each land where it was sent, byte for byte.
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    let a = format!("Subject: a\r\n\r\n{}\r\n", "a".repeat(6000));
    let b = format!("Subject: b\r\n\r\n{}\r\n", "b".repeat(9000));
    let tag = c.tag();
    c.send_raw(
        format!(
            "{tag} APPEND INBOX {{{}+}}\r\n{a} {{{}+}}\r\n{b}\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    let r = c.read_until_tagged(&tag);
    assert!(r.tagged.contains("OK"), "{r:#?}");
    let big = format!("{}\r\n", "c".repeat(7000));
    let tag = c.tag();
    c.send_raw(
        format!(
            "{tag} APPEND INBOX CATENATE (TEXT {{14+}}\r\nSubject: c\r\n\r\n TEXT {{{}+}}\r\n{big})\r\n",
            big.len()
        )
        .as_bytes(),
    );
    let r = c.read_until_tagged(&tag);
    assert!(r.tagged.contains("OK"), "{r:#?}");
    let inbox = server.inbox("alice@example.test");
    assert_eq!(inbox.len(), 3);
    assert_eq!(inbox[0], a.as_bytes());
    assert_eq!(inbox[1], b.as_bytes());
    assert_eq!(inbox[2], format!("Subject: c\r\n\r\n{big}").as_bytes());
}

#[test]
fn streamed_literals_of_one_append_together_stay_within_the_append_limit() {
    // Each literal fits imap.max_literal_size, the set does not: what is
    // read back from the spool for one MULTIAPPEND is bounded, and nothing
    // is stored.
    let server = Server::start_with_extra(common::Extra {
        imap: "max_literal_size = 10000".into(),
        ..Default::default()
    });
    let mut c = Imap::login(&server, "alice", "secret");
    let a = format!("Subject: a\r\n\r\n{}\r\n", "a".repeat(6000));
    let tag = c.tag();
    c.send_raw(
        format!(
            "{tag} APPEND INBOX {{{n}+}}\r\n{a} {{{n}+}}\r\n{a}\r\n",
            n = a.len()
        )
        .as_bytes(),
    );
    let r = c.read_until_tagged(&tag);
    assert!(r.tagged.contains("NO [TOOBIG]"), "{r:#?}");
    assert!(server.inbox("alice@example.test").is_empty());
    // The connection goes on.
    c.ok("NOOP");
}

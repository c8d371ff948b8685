//! IMAP behaviour real clients rely on, through python imaplib against the
//! real server: subscriptions apart from existence (RFC 9051 6.3.7-6.3.9,
//! RFC 5258) and finding a message by its Message-ID after APPEND.

mod common;

use std::process::Command;

use common::Server;

fn run_imaplib(server: &Server, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.imap.port().to_string())
        .output()
        .expect("python3 (scripts/test-deps installs it)");
    assert!(
        out.status.success(),
        "imaplib failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SUBSCRIPTIONS: &str = r#"
import imaplib, sys
port = int(sys.argv[1])
A = imaplib.IMAP4("127.0.0.1", port)
A.login("alice", "secret")
B = imaplib.IMAP4("127.0.0.1", port)
B.login("alice", "secret")

def lsub(M, pat):
    typ, data = M.lsub('""', pat)
    assert typ == "OK", data
    return [l for l in data if l]

# CREATE does not subscribe (RFC 9051 6.3.4, 6.3.7).
assert A.create("Proj/Alpha")[0] == "OK"
assert lsub(B, "Proj*") == [], lsub(B, "Proj*")
assert A.subscribe("Proj/Alpha")[0] == "OK"
# The other session sees it; % stops at Proj, which is \Noselect in LSUB.
got = lsub(B, "%")
assert b'(\\Noselect) "/" Proj' in got, got
assert lsub(B, "Proj/%") == [b'() "/" Proj/Alpha'], lsub(B, "Proj/%")
# DELETE keeps the subscription: LSUB still has it, LIST (SUBSCRIBED)
# marks it \NonExistent, plain LIST does not show it.
assert A.delete("Proj/Alpha")[0] == "OK"
assert lsub(B, "Proj/%") == [b'(\\Noselect) "/" Proj/Alpha'], lsub(B, "Proj/%")
typ, data = B.list('""', "Proj/*")
assert typ == "OK" and data == [None], data
typ, data = B._simple_command("LIST", "(SUBSCRIBED)", '""', "Proj/*")
typ, data = B._untagged_response(typ, data, "LIST")
assert any(b"\\NonExistent" in l and b"\\Subscribed" in l and b"Proj/Alpha" in l for l in data), data
# RECURSIVEMATCH: Proj is not subscribed, its subscribed child is not in
# the pattern: CHILDINFO.
typ, data = B._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
typ, data = B._untagged_response(typ, data, "LIST")
assert any(b"Proj" in l and b"CHILDINFO" in l for l in data), data
# Unsubscribing a name without a mailbox works.
assert A.unsubscribe("Proj/Alpha")[0] == "OK"
assert lsub(B, "Proj*") == [], lsub(B, "Proj*")
A.logout(); B.logout()
print("ok")
"#;

#[test]
fn python_imaplib_sees_subscriptions_apart_from_existence() {
    let server = Server::start();
    run_imaplib(&server, SUBSCRIPTIONS);
}

const MESSAGE_ID_SEARCH: &str = r#"
import imaplib, sys, time
port = int(sys.argv[1])
M = imaplib.IMAP4("127.0.0.1", port)
M.login("alice", "secret")
msg = (b"Message-ID: <draft.42@client.example>\r\nReferences: <a@b> <c@d>\r\n"
       b"In-Reply-To: <c@d>\r\nTo: team: x@y.example;\r\nSubject: draft\r\n\r\nbody\r\n")
typ, data = M.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), msg)
assert typ == "OK", data
M.append("Drafts", None, None, b"Message-ID: <other@client.example>\r\n\r\nx\r\n")
M.select("Drafts")
# What clients do to find the message they just saved.
for key in (("HEADER", "Message-ID", '"<draft.42@client.example>"'),
            ("HEADER", "References", '"<c@d>"'),
            ("HEADER", "In-Reply-To", '"<c@d>"'),
            ("TEXT", '"<draft.42@client.example>"'),
            ("TO", "team")):
    typ, data = M.search(None, *key)
    assert typ == "OK" and data == [b"1"], (key, data)
M.logout()
print("ok")
"#;

#[test]
fn python_imaplib_finds_an_appended_message_by_message_id() {
    let server = Server::start();
    run_imaplib(&server, MESSAGE_ID_SEARCH);
}

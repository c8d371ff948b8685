//! Incremental sync with real clients after changes from another session:
//! python imaplib keeps a mailbox selected while another connection
//! changes flags, brings in a new keyword, expunges and appends, and must
//! be told each change in order at its next command; mbsync re-syncs a
//! Maildir after another session's changes and pushes its own to a
//! session that stays selected. A missing client fails (scripts/test-deps
//! installs them).

mod common;
mod imap_kit;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is not installed: run scripts/test-deps");
}

/// Session A holds INBOX selected; session B changes it. A's NOOP must
/// carry every change, the new keyword's FLAGS before its FETCH, and A's
/// later reads must match the store.
const IMAPLIB_SCRIPT: &str = r#"
import imaplib, sys
port = int(sys.argv[1])

class Recording(imaplib.IMAP4):
    """Keeps every line the server sends, in order (imaplib's own
    untagged_responses is a dict and loses the order)."""
    def __init__(self, *a):
        self.lines = []
        super().__init__(*a)
    def _get_line(self):
        line = super()._get_line()
        self.lines.append(line.decode("utf-8", "replace"))
        return line

A = Recording("127.0.0.1", port)
A.login("alice", "secret")
typ, data = A.select("INBOX")
assert typ == "OK" and data == [b"3"], (typ, data)
B = imaplib.IMAP4("127.0.0.1", port)
B.login("alice", "secret")
B.select("INBOX")
assert B.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"
assert B.store("2", "+FLAGS", "($Label7)")[0] == "OK"
assert B.store("3", "+FLAGS", "(\\Deleted)")[0] == "OK"
assert B.expunge()[1] == [b"3"]
assert B.append("INBOX", None, None, b"Subject: from B\r\n\r\nnew\r\n")[0] == "OK"

A.lines.clear()
assert A.noop()[0] == "OK"
lines = A.lines
def at(pred, what):
    for i, l in enumerate(lines):
        if pred(l):
            return i
    raise AssertionError(f"no {what} in {lines}")
flags = at(lambda l: l.startswith("* FLAGS (") and "$Label7" in l, "FLAGS with $Label7")
perm = at(lambda l: l.startswith("* OK [PERMANENTFLAGS (") and "$Label7" in l, "PERMANENTFLAGS")
fetch2 = at(lambda l: l.startswith("* 2 FETCH (FLAGS (") and "$Label7" in l, "FETCH of 2")
at(lambda l: l.startswith("* 1 FETCH (FLAGS (") and "\\Seen" in l, "FETCH of 1")
expunge = at(lambda l: l == "* 3 EXPUNGE", "EXPUNGE of 3")
exists = at(lambda l: l == "* 3 EXISTS", "EXISTS")
assert flags < perm < fetch2, lines
assert expunge < exists, lines

# Nothing more to say: no change, no response.
A.lines.clear()
A.noop()
assert not [l for l in A.lines if l.startswith("* ")], A.lines

# A's view matches the store (B's view of it).
A.untagged_responses.clear()
typ, a = A.uid("FETCH", "1:*", "(FLAGS)")
typ, b = B.uid("FETCH", "1:*", "(FLAGS)")
strip = lambda d: sorted(x.replace(b" \\Recent", b"").replace(b"(\\Recent)", b"()") for x in d)
assert strip(a) == strip(b), (a, b)
assert len(a) == 3 and b"UID 4" in a[2], a

# And the other way: what A does, B hears at its next command.
assert A.store("3", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
typ, data = B.noop()
assert b"3 (FLAGS (\\Flagged" in b" ".join(B.untagged_responses.get("FETCH", [])), B.untagged_responses
A.logout(); B.logout()
print("imaplib incremental ok")
"#;

#[test]
fn imaplib_hears_another_sessions_changes_in_order() {
    require("python3");
    let server = Server::start();
    for i in 1..=3 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(IMAPLIB_SCRIPT)
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

/// The Maildir files of a folder (new and cur), as names.
fn maildir_files(folder: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(d) = std::fs::read_dir(folder.join(sub)) {
            names.extend(
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    names.sort();
    names
}

/// The Maildir flags of a file name (after ":2,").
fn maildir_flags(name: &str) -> &str {
    name.rsplit_once(":2,").map_or("", |(_, f)| f)
}

#[test]
fn mbsync_resyncs_after_another_sessions_changes_and_its_own_reach_a_selected_session() {
    require("mbsync");
    let server = Server::start();
    for i in 1..=3 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).expect("mkdir");
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount test\nHost 127.0.0.1\nPort {port}\nUser alice\nPass secret\n\
             CertificateFile {cert}\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount test\n\n\
             MaildirStore local\nPath {md}/\nInbox {md}/INBOX\nSubFolders Verbatim\n\n\
             Channel test\nFar :remote:INBOX\nNear :local:INBOX\nCreate Both\nExpunge Both\n\
             SyncState *\nSync All\n",
            port = server.imap.port(),
            cert = server.cert().display(),
            md = maildir.display()
        ),
    )
    .expect("rc");
    let run = || {
        let out = Command::new("mbsync")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .output()
            .expect("mbsync");
        assert!(
            out.status.success(),
            "mbsync failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let inbox = maildir.join("INBOX");
    run();
    assert_eq!(maildir_files(&inbox).len(), 3, "three messages pulled");

    // Another session, which stays selected: flags one, expunges one, and
    // a new message arrives.
    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("SELECT INBOX");
    other.ok("STORE 1 +FLAGS.SILENT (\\Flagged)");
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    deliver(&server, "alice@example.test", &simple_message("m4", "late"));
    run();
    let files = maildir_files(&inbox);
    assert_eq!(files.len(), 3, "m2 gone, m4 pulled: {files:?}");
    let flagged: Vec<&String> = files
        .iter()
        .filter(|f| maildir_flags(f).contains('F'))
        .collect();
    assert_eq!(flagged.len(), 1, "{files:?}");

    // mbsync's own change (the Flagged message marked seen locally) goes
    // up, and the session that stayed selected hears it as a FETCH.
    other.ok("NOOP");
    let cur = inbox.join("cur");
    std::fs::create_dir_all(&cur).expect("cur");
    let name = flagged[0].clone();
    let from = if inbox.join("new").join(&name).exists() {
        inbox.join("new").join(&name)
    } else {
        cur.join(&name)
    };
    let base = name.rsplit_once(":2,").map_or(name.as_str(), |(b, _)| b);
    std::fs::rename(&from, cur.join(format!("{base}:2,FS"))).expect("mark seen");
    run();
    let r = other.ok("NOOP");
    assert!(r.has("* 1 FETCH (FLAGS (\\Flagged \\Seen))"), "{r:#?}");
    // And the store agrees with the Maildir: nothing left to sync.
    let r = other.ok("FETCH 1:* (FLAGS)");
    assert_eq!(r.lines_with("FETCH").len(), 3, "{r:#?}");
    run();
    assert_eq!(maildir_files(&inbox).len(), 3);
}

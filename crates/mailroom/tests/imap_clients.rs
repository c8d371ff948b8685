//! Real IMAP clients against the real server: python imaplib, curl and
//! mbsync. A client that is not installed fails its test (scripts/test-deps
//! installs them all).

mod common;
mod imap_kit;

use std::process::{Command, Stdio};

use common::Server;
use imap_kit::{deliver, simple_message};

/// The tests need every client: scripts/test-deps installs them, and a
/// missing one is a failure, not a silent pass.
fn require(tool: &str) {
    assert!(have(tool), "{tool} is not installed: run scripts/test-deps");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const IMAPLIB_SCRIPT: &str = r#"
import imaplib, sys, time
port = int(sys.argv[1])
M = imaplib.IMAP4("127.0.0.1", port)
M.login("alice", "secret")
typ, data = M.select("INBOX")
assert typ == "OK" and data == [b"2"], (typ, data)
typ, data = M.fetch("1:*", "(FLAGS RFC822.SIZE ENVELOPE)")
assert typ == "OK" and len(data) == 2, data
typ, data = M.fetch("2", "(BODY.PEEK[TEXT])")
assert b"K\xc3\xb6ln" in data[0][1], data
typ, data = M.search("UTF-8", "BODY", "K\u00f6ln".encode())
assert data == [b"2"], data
typ, data = M.uid("SEARCH", None, "SUBJECT", "first")
assert data == [b"1"], data
typ, data = M.store("1", "+FLAGS", "(\\Flagged $Work)")
assert typ == "OK" and b"$Work" in data[0], data
typ, data = M.copy("1:2", "Archive")
assert typ == "OK", data
typ, data = M.uid("COPY", "2", "Trash")
assert typ == "OK", data
typ, data = M.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), b"Subject: draft\r\n\r\nwip\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data
typ, data = M.status("Archive", "(MESSAGES UNSEEN)")
assert b"MESSAGES 2" in data[0], data
typ, data = M.list()
assert typ == "OK" and any(b"\\Sent" in l for l in data), data
typ, data = M.create("Work/Projects")
assert typ == "OK", data
typ, data = M.rename("Work/Projects", "Work/Done")
assert typ == "OK", data
typ, data = M.subscribe("Work/Done")
assert typ == "OK", data
typ, data = M.lsub()
assert any(b"Work/Done" in l for l in data), data
typ, data = M.delete("Work/Done")
assert typ == "OK", data
typ, data = M.store("1", "+FLAGS", "\\Deleted")
typ, data = M.expunge()
assert data == [b"1"], data
typ, data = M.namespace()
assert typ == "OK", data
typ, data = M.noop()
typ, data = M.check()
assert typ == "OK"
typ, data = M.uid("FETCH", "1:*", "(UID FLAGS)")
assert typ == "OK", data
typ, data = M.close()
assert typ == "OK"
if hasattr(M, "idle"):
    M.select("INBOX")
    with M.idle(duration=1) as idler:
        for resp in idler:
            pass
M.logout()
print("imaplib ok")
"#;

#[test]
fn python_imaplib_covers_the_base_commands() {
    require("python3");
    let server = Server::start();
    deliver(
        &server,
        "alice@example.test",
        &simple_message("first", "one"),
    );
    deliver(
        &server,
        "alice@example.test",
        "Subject: second\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e aus K\u{f6}ln\r\n",
    );
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

fn curl(server: &Server, url_path: &str, extra: &[&str]) -> String {
    let url = format!("imap://127.0.0.1:{}/{url_path}", server.imap.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--user", "alice:secret"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_lists_fetches_by_uid_and_searches() {
    require("curl");
    let server = Server::start();
    deliver(
        &server,
        "alice@example.test",
        &simple_message("hello", "curl body"),
    );
    let list = curl(&server, "", &[]);
    assert!(
        list.contains("\"/\" INBOX") && list.contains("\\Sent"),
        "{list}"
    );
    let msg = curl(&server, "INBOX;UID=1", &[]);
    assert!(
        msg.contains("Subject: hello") && msg.contains("curl body"),
        "{msg}"
    );
    let search = curl(&server, "INBOX", &["-X", "SEARCH ALL"]);
    assert!(search.contains("* SEARCH 1"), "{search}");
    let search = curl(&server, "INBOX", &["-X", "UID SEARCH SUBJECT hello"]);
    assert!(search.contains("* SEARCH 1"), "{search}");
}

#[test]
fn mbsync_syncs_both_ways_and_a_second_sync_changes_nothing() {
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
             Channel test\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run();
    // mbsync's default SSLType is STARTTLS: it took it.
    assert!(server.log().contains("TLS established"), "{}", server.log());
    let inbox_new = maildir.join("INBOX").join("cur");
    let count = |p: &std::path::Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    let local = count(&inbox_new) + count(&maildir.join("INBOX").join("new"));
    assert_eq!(local, 3, "three messages pulled");
    // A local message goes up.
    let drafts = maildir.join("Drafts").join("new");
    std::fs::create_dir_all(&drafts).expect("drafts");
    std::fs::write(
        drafts.join("1.local:2,"),
        "Subject: local draft\r\n\r\nup\r\n",
    )
    .expect("write");
    run();
    let mut c = imap_kit::Imap::login(&server, "alice", "secret");
    let r = c.ok("STATUS Drafts (MESSAGES)");
    assert!(r.has("(MESSAGES 1)"), "{r:#?}");
    // Nothing left to do.
    let before = count(&inbox_new) + count(&maildir.join("INBOX").join("new"));
    run();
    let after = count(&inbox_new) + count(&maildir.join("INBOX").join("new"));
    assert_eq!(before, after);
    let r = c.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("(MESSAGES 3)"), "{r:#?}");
}

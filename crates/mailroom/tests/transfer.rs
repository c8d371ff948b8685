//! `mailroom import` and `mailroom export` end to end (issue 20): a
//! Maildir++ tree that Dovecot 2.3 wrote (tests/fixtures/dovecot-maildir,
//! with the mtimes Dovecot gave its files in dovecot-maildir.mtimes, since
//! git keeps none) is imported, read over IMAP by python's imaplib with
//! its flags, keywords, folders and dates, exported again and compared
//! message by message; mboxrd round-trips; a rerun, and a rerun after
//! kill -9, imports nothing twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, WAIT};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dovecot-maildir"
);
const MTIMES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dovecot-maildir.mtimes"
);

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// The fixture in a temp directory, its message files' mtimes as Dovecot
/// set them (the messages' INTERNALDATE).
fn dovecot_maildir(into: &Path) -> PathBuf {
    let root = into.join("Maildir");
    copy_tree(Path::new(FIXTURE), &root);
    for line in std::fs::read_to_string(MTIMES).expect("mtimes").lines() {
        let (t, rel) = line.split_once(' ').expect("mtime line");
        let t: u64 = t.parse().expect("mtime");
        let f = std::fs::File::options()
            .write(true)
            .open(root.join(rel))
            .expect("fixture file");
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t))
            .expect("set mtime");
    }
    root
}

/// (folder, message bytes) -> flag letters and keyword names, from a
/// Maildir++ tree, without our own reader: what Dovecot would see.
fn maildir_contents(root: &Path) -> BTreeMap<(String, Vec<u8>), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![("INBOX".to_string(), root.to_path_buf())];
    for e in std::fs::read_dir(root).expect("root") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(folder) = name.strip_prefix('.')
            && e.path().is_dir()
        {
            dirs.push((folder.to_string(), e.path()));
        }
    }
    for (folder, dir) in dirs {
        let keywords: BTreeMap<usize, String> =
            std::fs::read_to_string(dir.join("dovecot-keywords"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (n, k) = l.split_once(' ')?;
                    Some((n.parse().ok()?, k.to_string()))
                })
                .collect();
        for sub in ["cur", "new"] {
            let Ok(list) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in list {
                let e = e.expect("entry");
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let info = name.rsplit_once(":2,").map(|(_, i)| i).unwrap_or("");
                let flags: BTreeSet<String> = info
                    .chars()
                    .filter_map(|c| match c {
                        'a'..='z' => keywords.get(&(c as usize - 'a' as usize)).cloned(),
                        'P' => None,
                        c => Some(c.to_string()),
                    })
                    .collect();
                let body = std::fs::read(e.path()).expect("message");
                out.insert((folder.clone(), body), flags);
            }
        }
    }
    out
}

const IMAP_CHECK: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice', 'secret')
typ, boxes = m.list()
print('LIST', sorted(b.decode().rsplit(' ', 1)[-1].strip('"') for b in boxes))
for box in ['INBOX', 'Archive', 'Archive/2024', 'Work', 'Entw&APw-rfe']:
    typ, n = m.select(box, readonly=True)
    print('SELECT', box, n[0].decode())
    if int(n[0]) == 0:
        continue
    typ, data = m.fetch('1:*', '(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    for part in data:
        if isinstance(part, tuple):
            meta = part[0].decode()
            subject = part[1].decode().strip()
            flags = imaplib.ParseFlags(part[0])
            date = imaplib.Internaldate2tuple(part[0])
            import calendar
            print('MSG', box, subject, sorted(f.decode() for f in flags if f != b'\\Recent'), calendar.timegm(date))
m.logout()
"#;

fn python(port: u16) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(IMAP_CHECK)
        .arg(port.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "imaplib failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_dovecot_maildir_imports_reads_over_imap_and_exports_back_message_by_message() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let maildir = dovecot_maildir(tmp.path());
    let out = server.cli(&[
        "import",
        "alice@example.test",
        maildir.to_str().expect("path"),
    ]);
    assert!(out.contains("imported 7 messages into 5 folders"), "{out}");

    let seen = python(server.imap.port());
    for line in [
        "LIST ['Archive', 'Archive/2024', 'Drafts', 'Entw&APw-rfe', 'INBOX', 'Junk', 'Sent', 'Trash', 'Work']",
        "SELECT INBOX 4",
        "SELECT Entw&APw-rfe 0",
        "MSG INBOX Subject: seen one ['\\\\Seen'] 1672653600",
        "MSG INBOX Subject: answered forwarded ['$Forwarded', '\\\\Answered', '\\\\Seen'] 1672740000",
        "MSG INBOX Subject: flagged junk ['Junk', '\\\\Flagged'] 1672826400",
        "MSG INBOX Subject: unread [] 1672912800",
        "MSG Archive Subject: archived deleted ['\\\\Deleted', '\\\\Seen'] 1641000000",
        "MSG Archive/2024 Subject: year 2024 ['Work', '\\\\Seen'] 1704067200",
        "MSG Work Subject: work item ['$Forwarded', 'Work'] 1704240000",
    ] {
        assert!(seen.contains(line), "missing {line:?} in:\n{seen}");
    }

    // A rerun imports nothing again.
    let again = server.cli(&[
        "import",
        "alice@example.test",
        maildir.to_str().expect("path"),
    ]);
    assert!(again.contains("imported 0 messages"), "{again}");
    assert!(again.contains("7 already there"), "{again}");

    let exported = tmp.path().join("export");
    server.cli(&["export", "alice", exported.to_str().expect("path")]);
    let before = maildir_contents(&maildir);
    let after = maildir_contents(&exported);
    for (key, flags) in &before {
        assert_eq!(
            after.get(key),
            Some(flags),
            "folder {} message {:?}",
            key.0,
            String::from_utf8_lossy(&key.1)
        );
    }
    // Nothing more than the store's own empty special folders' absence.
    assert_eq!(after.len(), before.len());
    // INTERNALDATE is the exported file's mtime again.
    let inbox_file = std::fs::read_dir(exported.join("cur"))
        .expect("cur")
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).contains("Subject: seen one"))
                .unwrap_or(false)
        })
        .expect("exported message");
    let mtime = inbox_file
        .metadata()
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    assert_eq!(mtime, 1672653600);
}

const MBOX: &str = "From MAILER-DAEMON Mon Jan  2 15:04:05 2006
Subject: one
From: a@example.test

>From the first line of a body
>>From an already quoted one
>>>From twice

From MAILER-DAEMON Tue Feb 14 00:00:00 2023
Subject: two

plain

";

#[test]
fn an_mbox_with_from_lines_in_bodies_round_trips_exactly() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mbox = tmp.path().join("old.mbox");
    std::fs::write(&mbox, MBOX).expect("mbox");
    let out = server.cli(&[
        "import",
        "alice",
        mbox.to_str().expect("path"),
        "--folder",
        "Old/Mail",
    ]);
    assert!(out.contains("imported 2 messages"), "{out}");
    let stored = server.inbox_meta("alice@example.test");
    assert!(stored.is_empty(), "went into INBOX");
    let exported = tmp.path().join("out");
    server.cli(&[
        "export",
        "alice",
        exported.to_str().expect("path"),
        "--format",
        "mbox",
    ]);
    let back = std::fs::read_to_string(exported.join("Old/Mail.mbox")).expect("Old/Mail.mbox");
    assert_eq!(back, MBOX);
    // Every folder gets its file, empty ones too.
    assert!(exported.join("INBOX.mbox").exists());
}

#[test]
fn an_import_killed_midway_reruns_without_duplicates() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mbox = tmp.path().join("big.mbox");
    const N: usize = 20_000;
    let mut text = String::with_capacity(N * 120);
    for i in 0..N {
        text.push_str(&format!(
            "From MAILER-DAEMON Mon Jan  2 15:04:05 2006\nSubject: m{i}\nMessage-ID: <{i}@example.test>\n\nbody {i}\n\n"
        ));
    }
    std::fs::write(&mbox, text).expect("mbox");
    let mut child = Command::new(common::BIN)
        .arg("--config")
        .arg(&server.config)
        .args(["import", "alice"])
        .arg(&mbox)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("import");
    // Kill it once some, not all, are in.
    let deadline = Instant::now() + WAIT;
    loop {
        let n = server.inbox_meta("alice@example.test").len();
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let partial = server.inbox_meta("alice@example.test").len();
    let out = server.cli(&["import", "alice", mbox.to_str().expect("path")]);
    let all = server.inbox_meta("alice@example.test");
    assert_eq!(all.len(), N, "after a kill at {partial}: {out}");
    assert!(
        out.contains(&format!("{partial} already there")),
        "killed at {partial}: {out}"
    );
    eprintln!("killed after {partial} of {N}");
}

#[test]
fn a_backup_taken_while_smtp_delivers_restores_every_acknowledged_message() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let server = Server::start();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), server.smtp);
        std::thread::spawn(move || {
            let mut c = common::Smtp::connect(addr).ehlo();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                let subject = format!("during backup {i}");
                let msg = format!("Subject: {subject}\r\n\r\nx\r\n");
                let r = c.send_mail("bob@remote.test", &["alice@example.test"], msg.as_bytes());
                assert_eq!(r.code, 250);
                acked.lock().expect("lock").push(subject);
                i += 1;
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    while acked.lock().expect("lock").len() < 50 {
        assert!(Instant::now() < deadline, "no deliveries");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Everything acknowledged before the backup starts must be in it.
    let before: Vec<String> = acked.lock().expect("lock").clone();
    let tmp = tempfile::tempdir().expect("tempdir");
    let backup = tmp.path().join("backup");
    let out = server.cli(&["backup", backup.to_str().expect("path")]);
    assert!(out.contains("backed up"), "{out}");
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");

    let fresh = Server::create_with(common::Extra::default());
    let out = fresh.cli(&["restore", backup.to_str().expect("path")]);
    assert!(out.contains("restored"), "{out}");
    let fresh = fresh.run();
    let subjects: BTreeSet<String> = fresh
        .inbox("alice@example.test")
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    for s in &before {
        assert!(
            subjects.contains(s),
            "{s} acknowledged before the backup, missing after restore"
        );
    }
    // And restore never writes over a data directory in use.
    let again = fresh.cli_output(&["restore", backup.to_str().expect("path")], None);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("missing or empty"),
        "{again:?}"
    );
    eprintln!(
        "{} acknowledged before the backup; {} restored",
        before.len(),
        subjects.len()
    );
}

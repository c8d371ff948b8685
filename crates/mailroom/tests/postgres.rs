//! `mailroom serve` on PostgreSQL (`[store] backend = "postgres"`, issue
//! 21): the real binary with its store and directory in a database of the
//! test process's private cluster (`store_pg::cluster`), driven over SMTP,
//! IMAP and POP3, with users added by the CLI against the same database.
//! `MAILROOM_SKIP_PG=1` skips these tests.

mod common;
mod imap_kit;
mod pop3_kit;

use common::{Server, Smtp};
use imap_kit::{Imap, simple_message};
use pop3_kit::Pop3;

/// A server configured on a fresh database of the private cluster, not
/// started; None when the PostgreSQL tests are skipped.
fn pg_server(node_id: &str) -> Option<(Server, String)> {
    if store_pg::cluster::skip() {
        return None;
    }
    let url = store_pg::cluster::shared().create_database();
    Some((pg_node(&url, node_id, ""), url))
}

/// A node on the database at `url` with a data directory of its own, not
/// started; `tail` is appended to its config (sections after `[store]`).
fn pg_node(url: &str, node_id: &str, tail: &str) -> Server {
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    let store =
        format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode_id = \"{node_id}\"");
    std::fs::write(&server.config, format!("{base}\n{store}\n{tail}\n")).expect("write config");
    server
}

/// Reads IMAP lines until one contains `needle` (within the kit's WAIT).
fn wait_for_line(imap: &mut Imap, needle: &str) -> String {
    let deadline = std::time::Instant::now() + common::WAIT;
    while std::time::Instant::now() < deadline {
        match imap.try_line() {
            Some(line) if line.contains(needle) => return line,
            Some(_) => {}
            None => break,
        }
    }
    panic!("no line with {needle:?} within {:?}", common::WAIT);
}

#[test]
fn serve_on_postgres_takes_smtp_and_serves_imap_and_pop3_with_cli_users() {
    let Some((server, _url)) = pg_server("node-a") else {
        return;
    };
    server.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    server.cli(&["user", "add", "bob@example.test", "--password", "secret"]);
    let server = server.run();

    let mut smtp = Smtp::connect(server.smtp).ehlo();
    let r = smtp.send_mail(
        "sender@other.test",
        &["alice@example.test", "bob@example.test"],
        simple_message("on-postgres", "stored in PostgreSQL").as_bytes(),
    );
    assert_eq!(r.code, 250, "{r:?}");
    // Nobody else is known: the directory on PostgreSQL answers RCPT.
    smtp.cmd("MAIL FROM:<sender@other.test>", 250);
    smtp.cmd("RCPT TO:<carol@example.test>", 550);
    smtp.cmd("RSET", 250);

    let mut imap = Imap::login(&server, "alice@example.test", "secret");
    let r = imap.ok("SELECT INBOX");
    assert!(r.has("* 1 EXISTS"), "{:?}", r.untagged);
    let r = imap.ok("UID FETCH 1 (BODY.PEEK[])");
    assert!(r.has("stored in PostgreSQL"), "{:?}", r.untagged);

    let mut pop = Pop3::login(server.pop3, "bob@example.test", "secret");
    assert!(pop.ok("STAT").starts_with("+OK 1 "));
    let body = String::from_utf8_lossy(&pop.retr(1)).into_owned();
    assert!(body.contains("Subject: on-postgres"), "{body}");
    pop.ok("QUIT");

    // A user added by the CLI while the server runs is known at once
    // (same database), and can log in.
    server.cli(&["user", "add", "carol@example.test", "--password", "pw3"]);
    smtp.cmd("MAIL FROM:<sender@other.test>", 250);
    smtp.cmd("RCPT TO:<carol@example.test>", 250);
    smtp.cmd("QUIT", 221);
    let mut imap = Imap::login(&server, "carol@example.test", "pw3");
    imap.ok("SELECT INBOX");

    // Nothing went to the data directory's SQLite files.
    for file in ["store.db", "directory.db"] {
        assert!(!server.data_dir().join(file).exists(), "{file} was created");
    }
}

/// Two nodes on one database: a message taken by SMTP on node A reaches
/// an IDLE session on node B (the change feed across nodes); a DKIM key
/// made by node A's CLI is listed by node B's (in the database, not a data
/// directory); both take the SRS secret the first one stored, and a node
/// configured with another one refuses to start, saying why.
#[test]
fn two_nodes_share_mail_dkim_keys_and_the_srs_secret() {
    let Some((a, url)) = pg_server("node-a") else {
        return;
    };
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let b = pg_node(&url, "node-b", "").run();

    let mut idle = Imap::login(&b, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");
    let mut smtp = Smtp::connect(a.smtp).ehlo();
    let r = smtp.send_mail(
        "sender@other.test",
        &["alice@example.test"],
        simple_message("cross-node", "through node A").as_bytes(),
    );
    assert_eq!(r.code, 250, "{r:?}");
    wait_for_line(&mut idle, "* 1 EXISTS");
    idle.send("DONE");
    assert_eq!(idle.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");
    let r = idle.ok("UID FETCH 1 (BODY.PEEK[])");
    assert!(r.has("through node A"), "{:?}", r.untagged);

    let out = a.cli(&["dkim", "generate", "example.test", "--algorithm", "ed25519"]);
    assert!(out.contains("mr-ed._domainkey.example.test"), "{out}");
    let listed = b.cli(&["dkim", "list"]);
    assert!(
        listed.contains("example.test\tmr-ed\ted25519\tsigns"),
        "{listed}"
    );
    assert!(!a.data_dir().join("dkim").exists(), "a key folder was made");
    // The same selector again is refused, whichever node asks.
    let out = b.cli_output(
        &["dkim", "generate", "example.test", "--algorithm", "ed25519"],
        None,
    );
    assert!(!out.status.success());

    let c = pg_node(
        &url,
        "node-c",
        "[relay]\nsrs_secret = \"not-the-database-one\"",
    );
    let out = c.cli_output(&["serve"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("srs_secret differs"), "{err}");
    // Neither node made a key file of its own.
    for node in [&a, &b] {
        assert!(!node.data_dir().join("srs.key").exists());
    }
}

/// The UIDVALIDITY, then each message's UID and flags, of a mailbox.
fn mailbox_state(imap: &mut Imap, mailbox: &str) -> (String, Vec<String>) {
    let r = imap.ok(&format!("SELECT {mailbox}"));
    let validity = r
        .lines_with("UIDVALIDITY")
        .first()
        .map(|l| l.to_string())
        .unwrap_or_default();
    let r = imap.ok("UID FETCH 1:* (UID FLAGS MODSEQ)");
    // \Recent is per session (RFC 3501 2.3.2; gone in RFC 9051), not state
    // that moves.
    let mut fetched: Vec<String> = r
        .lines_with("FETCH")
        .iter()
        .map(|l| l.replace(" \\Recent", "").replace("\\Recent", ""))
        .collect();
    fetched.sort();
    (validity, fetched)
}

/// `mailroom migrate --to`: a populated embedded data directory (mail with
/// flags and an expunged message, a mailbox of one's own and its
/// subscription, an alias, a DKIM key) is copied into PostgreSQL; a rerun
/// has nothing to do; then the server on PostgreSQL shows every client the same
/// UIDVALIDITY, UIDs, flags and mod-sequences, the same logins, alias
/// and key.
#[test]
fn migrate_to_postgres_keeps_uids_flags_and_logins() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    let mut server = Server::start();
    for i in 1..=3 {
        imap_kit::deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "before the move"),
        );
    }
    let before = {
        let mut imap = Imap::login(&server, "alice@example.test", "secret");
        imap.ok("SELECT INBOX");
        imap.ok("UID STORE 2 +FLAGS (\\Flagged $Label1)");
        imap.ok("UID STORE 1 +FLAGS (\\Deleted)");
        imap.ok("EXPUNGE");
        imap.ok("CREATE Projects");
        imap.ok("SUBSCRIBE Projects");
        // METADATA (RFC 5464) moves with the mailbox it is on.
        imap.ok("SETMETADATA Projects (/private/comment \"kept\")");
        let inbox = mailbox_state(&mut imap, "INBOX");
        let r = imap.ok("LSUB \"\" *");
        assert!(r.has("Projects"), "{:?}", r.untagged);
        inbox
    };
    assert_eq!(before.1.len(), 2, "{before:?}");
    server.cli(&["alias", "add", "team@example.test", "alice@example.test"]);
    server.cli(&["dkim", "generate", "example.test", "--algorithm", "ed25519"]);
    server.terminate();

    let out = server.cli_output(&["migrate", "--to", &url], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 messages (2 bodies)"), "{stdout}");
    assert!(stdout.contains("2 users, 1 aliases"), "{stdout}");
    // A rerun finds this source's finished copy (tests/postgres_migrate.rs
    // has the resumed and refused cases).
    let out = server.cli_output(&["migrate", "--to", &url], None);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already migrated"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let text = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!("{text}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
    )
    .expect("config");
    server.spawn();
    let mut imap = Imap::login(&server, "alice@example.test", "secret");
    assert_eq!(mailbox_state(&mut imap, "INBOX"), before);
    let r = imap.ok("LSUB \"\" *");
    assert!(r.has("Projects"), "{:?}", r.untagged);
    let r = imap.ok("GETMETADATA Projects /private/comment");
    assert!(r.has("kept"), "{:?}", r.untagged);
    // Save dates (RFC 8514) are copied, not made up at the move.
    imap.ok("SELECT INBOX");
    let r = imap.ok("UID FETCH 2 (SAVEDATE)");
    assert!(r.has("SAVEDATE \""), "{:?}", r.untagged);
    // New mail continues above the copied UIDs.
    imap_kit::deliver(&server, "team@example.test", &simple_message("m4", "after"));
    imap.ok("SELECT INBOX");
    let r = imap.ok("UID FETCH 4 (UID)");
    assert!(r.has("UID 4"), "{:?}", r.untagged);
    let listed = server.cli(&["dkim", "list"]);
    assert!(
        listed.contains("example.test\tmr-ed\ted25519\tsigns"),
        "{listed}"
    );
}

/// PostgreSQL stopped under a running server: SMTP answers 451 4.3.0
/// (never 250 for what was not committed), IMAP `NO [UNAVAILABLE]`, POP3
/// `-ERR [SYS/TEMP]`; an IDLE session stays open and, once the database
/// is back, hears the next delivery without reconnecting.
#[test]
fn database_outage_is_temporary_everywhere_and_idle_catches_up() {
    if store_pg::cluster::skip() {
        return;
    }
    // A cluster of this test's own: it is stopped and started again.
    let cluster = store_pg::cluster::Cluster::private();
    let url = cluster.create_database();
    let server = pg_node(&url, "node-a", "");
    server.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let server = server.run();
    let mut idle = Imap::login(&server, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");
    let mut other = Imap::login(&server, "alice@example.test", "secret");
    let mut smtp = Smtp::connect(server.smtp).ehlo();

    cluster.stop();
    smtp.cmd("MAIL FROM:<sender@other.test>", 250);
    let rcpt = smtp.cmd("RCPT TO:<alice@example.test>", 451);
    assert_eq!(common::enhanced(&rcpt), "4.3.0", "{rcpt:?}");
    smtp.cmd("RSET", 250);
    let r = other.no("SELECT INBOX");
    assert!(r.tagged.contains("[UNAVAILABLE]"), "{}", r.tagged);
    let mut pop = Pop3::connect(server.pop3);
    pop.ok("USER alice@example.test");
    let err = pop.err("PASS secret");
    assert!(err.contains("[SYS/TEMP]"), "{err}");

    cluster.restart();
    // The pool reconnects by itself: the next transaction goes through.
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        smtp.cmd("MAIL FROM:<sender@other.test>", 250);
        smtp.send("RCPT TO:<alice@example.test>");
        let r = smtp.reply();
        if r.code == 250 {
            break;
        }
        assert!(
            r.code == 451 && std::time::Instant::now() < deadline,
            "{r:?}"
        );
        smtp.cmd("RSET", 250);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    smtp.cmd("DATA", 354);
    smtp.send_raw(simple_message("after-outage", "back").as_bytes());
    smtp.cmd(".", 250);
    wait_for_line(&mut idle, "* 1 EXISTS");
    idle.send("DONE");
    assert_eq!(idle.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");
}

/// Two nodes on one database both run the queue: each message submitted
/// on either node reaches the remote server exactly once (claims with
/// `FOR UPDATE SKIP LOCKED` and leases on the database's clock), and the
/// shared queue ends empty.
#[test]
fn two_nodes_send_each_queued_message_exactly_once() {
    let Some((a, url)) = pg_server("node-a") else {
        return;
    };
    // The receiving side: a mailroom of its own (SQLite) for remote.example.
    let remote = Server::create("", "");
    let text = std::fs::read_to_string(&remote.config).expect("config");
    let text = text.replace(
        "domains = [\"example.test\", \"other.test\"]",
        "domains = [\"remote.example\"]",
    );
    std::fs::write(&remote.config, text).expect("config");
    remote.cli(&["user", "add", "carol@remote.example", "--password", "pw"]);
    let remote = remote.run();
    let relay = format!(
        "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 2",
        remote.smtp.port()
    );
    let a = {
        let text = std::fs::read_to_string(&a.config).expect("config");
        std::fs::write(&a.config, format!("{text}\n{relay}\n")).expect("config");
        a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
        a.run()
    };
    let b = pg_node(&url, "node-b", &relay).run();

    const PER_NODE: usize = 10;
    for i in 0..PER_NODE {
        for (name, node) in [("a", &a), ("b", &b)] {
            let mut c = Smtp::connect(node.submission).ehlo();
            let plain = proto_common::encode_plain("", "alice", "secret");
            c.cmd(&format!("AUTH PLAIN {plain}"), 235);
            let msg = format!("Subject: via-{name}-{i}\r\n\r\nonce\r\n");
            let r = c.send_mail(
                "alice@example.test",
                &["carol@remote.example"],
                msg.as_bytes(),
            );
            assert_eq!(r.code, 250, "{r:?}");
        }
    }
    let deadline = std::time::Instant::now() + common::WAIT * 2;
    while std::time::Instant::now() < deadline {
        if remote.inbox("carol@remote.example").len() >= 2 * PER_NODE
            && a.cli(&["queue", "list"]).trim().is_empty()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A little longer, so that a second copy would have arrived too.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let got = remote.inbox("carol@remote.example");
    let mut subjects: Vec<String> = got
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find(|l| l.starts_with("Subject: "))
                .map(str::to_string)
        })
        .collect();
    subjects.sort();
    let before = subjects.len();
    subjects.dedup();
    assert_eq!(before, 2 * PER_NODE, "{subjects:?}");
    assert_eq!(subjects.len(), 2 * PER_NODE, "a message went out twice");
    assert!(b.cli(&["queue", "list"]).trim().is_empty());
}

/// Failed logins count over every node: two failures on node A and two
/// on node B reach `lockout_failures = 4` for the address, so a right
/// password from it is refused on both nodes, as one node would refuse it
/// after four failures of its own.
#[test]
fn failed_logins_on_two_nodes_lock_the_address_out_on_both() {
    let Some((a, url)) = pg_server("node-a") else {
        return;
    };
    let b = pg_node(&url, "node-b", "");
    for node in [&a, &b] {
        let text = std::fs::read_to_string(&node.config).expect("config");
        let text = text.replacen("[auth]\n", "[auth]\nlockout_failures = 4\n", 1);
        std::fs::write(&node.config, text).expect("config");
    }
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let (a, b) = (a.run(), b.run());
    for node in [&a, &b] {
        for _ in 0..2 {
            let mut c = Imap::connect(node.imap);
            c.no("LOGIN alice@example.test wrong");
        }
    }
    // The nodes read the database's lockouts every second.
    std::thread::sleep(3 * server_sync_interval());
    for node in [&a, &b] {
        let mut c = Imap::connect(node.imap);
        c.no("LOGIN alice@example.test secret");
    }
}

/// `shared_throttle::SYNC_INTERVAL` of the binary.
fn server_sync_interval() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}

/// SEND (RFC 821 3.4) to a user whose only IMAP session is on node B,
/// through node A: once B's presence row is renewed, A accepts it (450
/// before: nobody at a terminal) and B's IDLE session shows one
/// `* OK [ALERT]` line; nothing goes to the mailbox.
#[test]
fn send_through_one_node_alerts_a_session_on_another() {
    let Some((a, url)) = pg_server("node-a") else {
        return;
    };
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let b = pg_node(&url, "node-b", "").run();
    let mut idle = Imap::login(&b, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");

    let mut smtp = Smtp::connect(a.smtp).ehlo();
    // B announces its sessions every few seconds: until then A knows of
    // no terminal, and SEND is 450 with no side effect.
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        smtp.cmd("SEND FROM:<bob@example.test>", 250);
        smtp.send("RCPT TO:<alice@example.test>");
        let r = smtp.reply();
        if r.code == 250 {
            break;
        }
        assert!(
            r.code == 450 && std::time::Instant::now() < deadline,
            "{r:?}"
        );
        smtp.cmd("RSET", 250);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    smtp.cmd("DATA", 354);
    smtp.send_raw(b"From: bob@example.test\r\nSubject: lunch\r\n\r\nnow?\r\n.\r\n");
    assert_eq!(smtp.reply().code, 250);
    let alert = wait_for_line(&mut idle, "[ALERT]");
    assert!(
        alert.contains("Message from bob@example.test: lunch - now?"),
        "{alert}"
    );
    idle.send("DONE");
    assert_eq!(idle.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");
    let r = idle.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("MESSAGES 0"), "{:?}", r.untagged);
}

/// A remote SMTP server for the lease test: the first connection stalls
/// after the message's final "." until the client goes away; every later
/// one answers 250 and keeps the message.
struct StallingRemote {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn stalling_remote() -> StallingRemote {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let stalled = Arc::new(AtomicBool::new(false));
    let (g, s) = (Arc::clone(&got), Arc::clone(&stalled));
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let (g, s) = (Arc::clone(&g), Arc::clone(&s));
            std::thread::spawn(move || serve_smtp(stream, n == 0, &g, &s));
        }
    });
    StallingRemote { port, got, stalled }
}

fn serve_smtp(
    stream: std::net::TcpStream,
    stall: bool,
    got: &std::sync::Mutex<Vec<String>>,
    stalled: &std::sync::atomic::AtomicBool,
) {
    use std::io::{BufRead, Write};
    let _ = stream.set_read_timeout(Some(common::WAIT * 3));
    let Ok(read) = stream.try_clone() else { return };
    let mut r = std::io::BufReader::new(read);
    let mut w = stream;
    let mut say = |text: &str| w.write_all(text.as_bytes()).is_ok();
    if !say("220 remote.example ESMTP\r\n") {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let ok = match verb.as_str() {
            "DATA" => {
                if !say("354 go ahead\r\n") {
                    return;
                }
                let mut message = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(&line);
                }
                if stall {
                    // No answer: the sender dies waiting for it.
                    stalled.store(true, std::sync::atomic::Ordering::SeqCst);
                    while r.read_line(&mut line).unwrap_or(0) > 0 {}
                    return;
                }
                if let Ok(mut g) = got.lock() {
                    g.push(message);
                }
                say("250 2.0.0 queued\r\n")
            }
            "QUIT" => {
                say("221 bye\r\n");
                return;
            }
            "EHLO" | "HELO" => say("250 remote.example\r\n"),
            _ => say("250 ok\r\n"),
        };
        if !ok {
            return;
        }
    }
}

/// kill -9 of a node in the middle of sending: nothing is lost, and its
/// claimed queue row goes out from the other node once the claim's lease
/// (`[relay] queue_lease`, on the database's clock) has ended.
#[test]
fn a_killed_nodes_queue_row_goes_out_from_another_after_the_lease() {
    let Some((a, url)) = pg_server("node-a") else {
        return;
    };
    let remote = stalling_remote();
    let relay = format!(
        "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 2\nqueue_lease = 3",
        remote.port
    );
    let mut a = {
        let text = std::fs::read_to_string(&a.config).expect("config");
        std::fs::write(&a.config, format!("{text}\n{relay}\n")).expect("config");
        a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
        a.run()
    };
    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    let msg = b"Subject: survives-a-node\r\n\r\nonce\r\n";
    let r = c.send_mail("alice@example.test", &["carol@remote.example"], msg);
    assert_eq!(r.code, 250, "{r:?}");
    let deadline = std::time::Instant::now() + common::WAIT;
    while !remote.stalled.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "node A never sent");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Node A holds the claim and dies before the remote's answer.
    a.kill9();
    let b = pg_node(&url, "node-b", &relay).run();
    let deadline = std::time::Instant::now() + common::WAIT;
    let count = || remote.got.lock().map(|g| g.len()).unwrap_or(0);
    while count() == 0 {
        assert!(std::time::Instant::now() < deadline, "node B never sent it");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(count(), 1);
    let got = remote.got.lock().map(|g| g.clone()).unwrap_or_default();
    assert!(
        got.iter().all(|m| m.contains("Subject: survives-a-node")),
        "{got:?}"
    );
    let deadline = std::time::Instant::now() + common::WAIT;
    while !b.cli(&["queue", "list"]).trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the row stayed queued"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

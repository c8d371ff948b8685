//! Presence for SEND/SOML/SAML across nodes on PostgreSQL (issue 21;
//! RFC 821 3.4): a dead node's sessions stop counting when its lease
//! (`[store] presence_lease`, made short here) ends, and the one ALERT
//! per user per second holds across nodes (a conditional upsert on the
//! database's clock). `MAILROOM_SKIP_PG=1` skips these tests.

mod common;
mod imap_kit;

use common::{Server, Smtp};
use imap_kit::Imap;

/// A node on the database at `url` with a presence lease of `lease`
/// seconds, not started.
fn node(url: &str, node_id: &str, lease: u64) -> Server {
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    let store = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode_id = \"{node_id}\"\n\
         presence_lease = {lease}"
    );
    std::fs::write(&server.config, format!("{base}\n{store}\n")).expect("write config");
    server
}

/// Reads IMAP lines until one contains `needle`.
fn wait_for_line(imap: &mut Imap, needle: &str) -> String {
    loop {
        match imap.try_line() {
            Some(line) if line.contains(needle) => return line,
            Some(_) => {}
            None => panic!("connection closed before {needle:?}"),
        }
    }
}

/// Waits until SEND to alice through `smtp` is accepted at RCPT (the
/// node has read a live presence row of hers), leaving the transaction
/// open at RCPT.
fn wait_until_present(smtp: &mut Smtp) {
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        smtp.cmd("SEND FROM:<bob@example.test>", 250);
        smtp.send("RCPT TO:<alice@example.test>");
        let r = smtp.reply();
        if r.code == 250 {
            return;
        }
        assert!(
            r.code == 450 && std::time::Instant::now() < deadline,
            "{r:?}"
        );
        smtp.cmd("RSET", 250);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_killed_nodes_session_stops_counting_when_its_lease_ends() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    let a = node(&url, "node-a", 2);
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let mut a = a.run();
    let b = node(&url, "node-b", 2).run();

    let mut idle = Imap::login(&a, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");
    let mut smtp = Smtp::connect(b.smtp).ehlo();
    wait_until_present(&mut smtp);
    smtp.cmd("RSET", 250);

    // Node A dies with alice's session selected and in IDLE: nobody
    // removes its presence row; B stops counting it when the lease ends.
    a.kill9();
    drop(idle);
    let deadline = std::time::Instant::now() + common::WAIT;
    let absent = loop {
        smtp.cmd("SEND FROM:<bob@example.test>", 250);
        smtp.send("RCPT TO:<alice@example.test>");
        let r = smtp.reply();
        smtp.cmd("RSET", 250);
        if r.code != 250 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice still counts as present after the lease"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // As for a user without a session (RFC 821 3.4: SEND needs one).
    assert_eq!(absent.code, 450, "{absent:?}");
    assert_eq!(common::enhanced(&absent), "4.2.1", "{absent:?}");
    // SOML falls back to the mailbox.
    smtp.cmd("SOML FROM:<bob@example.test>", 250);
    smtp.cmd("RCPT TO:<alice@example.test>", 250);
    smtp.cmd("DATA", 354);
    smtp.send_raw(b"From: bob@example.test\r\nSubject: soml\r\n\r\nkept\r\n.\r\n");
    assert_eq!(smtp.reply().code, 250);
    smtp.cmd("QUIT", 221);
    let mut imap = Imap::login(&b, "alice@example.test", "secret");
    let r = imap.ok("SELECT INBOX");
    assert!(r.has("* 1 EXISTS"), "{:?}", r.untagged);
    let r = imap.ok("UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(r.has("Subject: soml"), "{:?}", r.untagged);
}

#[test]
fn two_nodes_sending_at_once_show_one_alert_and_store_the_other() {
    if store_pg::cluster::skip() {
        return;
    }
    let cluster = store_pg::cluster::shared();
    let url = cluster.create_database();
    let db = url.rsplit('/').next().expect("db").to_string();
    let a = node(&url, "node-a", 30);
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let b = node(&url, "node-b", 30).run();

    let mut idle = Imap::login(&a, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");

    // One SEND through each node, both up to the final "." ...
    let mut via_a = Smtp::connect(a.smtp).ehlo();
    let mut via_b = Smtp::connect(b.smtp).ehlo();
    wait_until_present(&mut via_a);
    wait_until_present(&mut via_b);
    for (smtp, n) in [(&mut via_a, "a"), (&mut via_b, "b")] {
        smtp.cmd("DATA", 354);
        smtp.send_raw(
            format!("From: bob@example.test\r\nSubject: via {n}\r\n\r\nhi\r\n").as_bytes(),
        );
    }
    // ... then ended together: both nodes claim alice's ALERT slot within
    // the same second, and the database gives it to one.
    via_a.send_raw(b".\r\n");
    via_b.send_raw(b".\r\n");
    assert_eq!(via_a.reply().code, 250);
    assert_eq!(via_b.reply().code, 250);
    // Whatever went to node A's session through the database was
    // committed before the 250 and is taken within a poll.
    let deadline = std::time::Instant::now() + common::WAIT;
    while cluster
        .query_with(&db, "SELECT count(*) FROM terminal_messages", &[])
        .trim()
        != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "terminal message not taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The one stored message's EXISTS shows that both transactions are
    // through; then everything the session was handed is on the wire
    // before the reply to DONE.
    let mut seen: Vec<String> = Vec::new();
    // Until the stored one's EXISTS, or a second ALERT (the limit broken).
    while !seen.iter().any(|l| l.contains("* 1 EXISTS"))
        && seen.iter().filter(|l| l.contains("[ALERT]")).count() < 2
    {
        seen.push(idle.line());
    }
    idle.send("DONE");
    let r = idle.read_until_tagged("i1");
    assert_eq!(r.tagged, "i1 OK IDLE terminated");
    seen.extend(r.untagged);
    seen.extend(idle.ok("NOOP").untagged);
    let alerts = seen.iter().filter(|l| l.contains("[ALERT]")).count();
    assert_eq!(alerts, 1, "{seen:?}");
    let r = idle.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("MESSAGES 1"), "{:?}", r.untagged);
}

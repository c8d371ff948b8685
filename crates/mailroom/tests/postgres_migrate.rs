//! `mailroom migrate --to postgres://...` resumes (issue 21): the copy
//! goes in batches of committed transactions with a marker row naming
//! the source and the progress; killed again and again part-way (the
//! test hook aborts the process right after a batch commits, as kill -9
//! would end it), the reruns end with exactly one copy of everything,
//! which clients then see with the same UIDs, UIDVALIDITY, flags,
//! mod-sequences, subscriptions and queue. A target holding other data,
//! another source's copy, or a source changed since the interrupted run
//! is refused. `MAILROOM_SKIP_PG=1` skips these tests.

mod common;
mod imap_kit;
mod pop3_kit;

use std::process::Output;

use common::{Extra, Server, Smtp};
use imap_kit::{Imap, simple_message};
use pop3_kit::Pop3;

/// The test hook of `mailroom migrate` (crates/mailroom/src/commands.rs).
const ABORT_ENV: &str = "MAILROOM_TEST_MIGRATE_ABORT_AFTER";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mailroom migrate --to url --batch batch`, aborting after `abort`
/// committed batches when given.
fn migrate(server: &Server, url: &str, batch: usize, abort: Option<u64>) -> Output {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("--config")
        .arg(&server.config)
        .args(["migrate", "--to", url, "--batch", &batch.to_string()])
        .stdin(std::process::Stdio::null());
    match abort {
        Some(n) => cmd.env(ABORT_ENV, n.to_string()),
        None => cmd.env_remove(ABORT_ENV),
    };
    cmd.output().expect("run migrate")
}

/// The marker row of the database at `url`: "step|done".
fn marker(url: &str) -> String {
    let db = url.rsplit('/').next().expect("db");
    store_pg::cluster::shared()
        .query_with(db, "SELECT step || '|' || done FROM migrate_marker", &[])
        .trim()
        .to_string()
}

/// UIDVALIDITY, and each message's UID, FLAGS and MODSEQ, of `mailbox`.
fn mailbox_state(imap: &mut Imap, mailbox: &str) -> Vec<String> {
    let r = imap.ok(&format!("SELECT {mailbox} (CONDSTORE)"));
    let mut state: Vec<String> = r
        .lines_with("UIDVALIDITY")
        .iter()
        .chain(r.lines_with("HIGHESTMODSEQ").iter())
        .chain(r.lines_with("UIDNEXT").iter())
        .map(|l| l.to_string())
        .collect();
    let r = imap.ok("UID FETCH 1:* (UID FLAGS MODSEQ)");
    // \Recent is per session (RFC 3501 2.3.2), not state that moves.
    let mut fetched: Vec<String> = r
        .lines_with("FETCH")
        .iter()
        .map(|l| l.replace(" \\Recent", "").replace("\\Recent", ""))
        .collect();
    fetched.sort();
    state.extend(fetched);
    state
}

/// Everything a client sees that the copy must keep.
fn client_view(server: &Server) -> Vec<String> {
    let mut imap = Imap::login(server, "alice@example.test", "secret");
    let mut view = mailbox_state(&mut imap, "INBOX");
    view.extend(mailbox_state(&mut imap, "Projects"));
    let r = imap.ok("LSUB \"\" *");
    let mut subscribed: Vec<String> = r.lines_with("LSUB").iter().map(|l| l.to_string()).collect();
    subscribed.sort();
    view.extend(subscribed);
    let mut pop = Pop3::login(server.pop3, "bob@example.test", "secret");
    view.push(pop.ok("STAT"));
    view.extend(pop.listing("UIDL"));
    pop.ok("QUIT");
    view
}

/// alice submits a message for a remote address (it stays queued: the
/// smarthost is a closed port and the retry an hour away).
fn submit_remote(server: &Server, to: &str) {
    let mut c = Smtp::connect(server.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    c.cmd("MAIL FROM:<alice@example.test>", 250);
    c.cmd(&format!("RCPT TO:<{to}>"), 250);
    c.cmd("DATA", 354);
    c.send_raw(simple_message("outbound", "for the queue").as_bytes());
    c.cmd(".", 250);
    c.cmd("QUIT", 221);
}

/// Points `server`'s config at PostgreSQL `url`.
fn use_postgres(server: &Server, url: &str) {
    let text = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!("{text}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
    )
    .expect("config");
}

#[test]
fn migrate_killed_again_and_again_resumes_to_exactly_one_copy() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    let mut server = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 3600\n",
            common::free_port()
        ),
        ..Extra::default()
    });
    for i in 1..=12 {
        imap_kit::deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("a{i}"), "before the move"),
        );
    }
    for i in 1..=5 {
        imap_kit::deliver(
            &server,
            "bob@example.test",
            &simple_message(&format!("b{i}"), "for POP3"),
        );
    }
    {
        let mut imap = Imap::login(&server, "alice@example.test", "secret");
        imap.ok("SELECT INBOX");
        imap.ok("UID STORE 2,5,7 +FLAGS (\\Flagged $Label1)");
        imap.ok("UID STORE 3 +FLAGS (\\Seen)");
        imap.ok("UID STORE 1,4 +FLAGS (\\Deleted)");
        imap.ok("EXPUNGE");
        imap.ok("CREATE Projects");
        imap.ok("SUBSCRIBE Projects");
        imap.ok("UID COPY 5:8 Projects");
        imap.ok("UNSUBSCRIBE INBOX");
    }
    submit_remote(&server, "carol@remote.test");
    submit_remote(&server, "dave@remote.test");
    // Wait for the first (failed) attempts, so the queue is at rest.
    let deadline = std::time::Instant::now() + common::WAIT;
    let queue_before = loop {
        let q = server.cli(&["queue", "list"]);
        if q.lines().count() == 2 && q.lines().all(|l| l.contains("\tdeferred\t1\t")) {
            break q;
        }
        assert!(std::time::Instant::now() < deadline, "queue: {q}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let before = client_view(&server);
    server.terminate();

    // Killed after every second committed batch (of 3 rows), reruns
    // resume until one finishes.
    let mut markers = Vec::new();
    let mut finished = None;
    for _ in 0..100 {
        let out = migrate(&server, &url, 3, Some(2));
        if out.status.success() {
            finished = Some(out);
            break;
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("aborting after batch 2"),
            "{}",
            text(&out)
        );
        markers.push(marker(&url));
        if markers.len() == 1 {
            // Meanwhile no node serves the half-copied database, and
            // another source may not write into it.
            let pg = Server::create("", "");
            use_postgres(&pg, &url);
            let out = pg.cli_output(&["serve"], None);
            assert!(!out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("unfinished mailroom migrate"),
                "{}",
                text(&out)
            );
            let other = Server::create("", "");
            other.cli(&["user", "add", "eve@example.test", "--password", "x"]);
            let out = migrate(&other, &url, 3, None);
            assert!(!out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("holds a migrate from"),
                "{}",
                text(&out)
            );
        }
    }
    let out = finished.expect("a rerun finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("resumed the interrupted migrate at"),
        "{stdout}"
    );
    // alice: 10 in INBOX + 4 in Projects; bob: 5 (19 entries; the copies
    // share bodies with their originals); two queued rows.
    assert!(stdout.contains("19 messages"), "{stdout}");
    assert!(stdout.contains("2 queued"), "{stdout}");
    assert!(markers.len() >= 5, "{markers:?}");
    assert!(
        markers.iter().any(|m| !m.ends_with("|0")),
        "no kill landed inside a table: {markers:?}"
    );
    assert_eq!(marker(&url), "finished|0");
    // Once finished, a rerun has nothing to do.
    let out = migrate(&server, &url, 3, None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already migrated"),
        "{}",
        text(&out)
    );

    use_postgres(&server, &url);
    assert_eq!(server.cli(&["queue", "list"]), queue_before);
    server.spawn();
    assert_eq!(client_view(&server), before);
    // New mail continues above the copied UIDs (UIDNEXT was 13).
    imap_kit::deliver(
        &server,
        "alice@example.test",
        &simple_message("after", "new"),
    );
    let mut imap = Imap::login(&server, "alice@example.test", "secret");
    imap.ok("SELECT INBOX");
    let r = imap.ok("UID FETCH 13 (UID)");
    assert!(r.has("UID 13"), "{:?}", r.untagged);
}

#[test]
fn migrate_refuses_a_target_with_other_data_or_a_changed_source() {
    if store_pg::cluster::skip() {
        return;
    }
    let cluster = store_pg::cluster::shared();
    let source = Server::create("", "");
    source.cli(&["user", "add", "alice@example.test", "--password", "x"]);
    for i in 1..=4 {
        let out = source.cli_output(
            &["deliver", "alice@example.test"],
            Some(simple_message(&format!("m{i}"), "x").as_bytes()),
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    // A database some PostgreSQL node already uses, without a marker.
    let used = cluster.create_database();
    let node = Server::create("", "");
    use_postgres(&node, &used);
    node.cli(&["user", "add", "zed@example.test", "--password", "x"]);
    let out = migrate(&source, &used, 3, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not empty") && err.contains("no migrate marker"),
        "{err}"
    );

    // The source changes between the interrupted run and the rerun.
    let url = cluster.create_database();
    let out = migrate(&source, &url, 1, Some(3));
    assert!(!out.status.success(), "{}", text(&out));
    let out = source.cli_output(
        &["deliver", "alice@example.test"],
        Some(simple_message("late", "arrived meanwhile").as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = migrate(&source, &url, 1, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed since the interrupted migrate"),
        "{err}"
    );
}

/// A body above `[store] spool_threshold` is kept in SQLite's chunk rows
/// (`V_BODY_CHUNKS`), not in `bodies.data`: the copy takes its octets
/// from them, and POP3 reads the same message from PostgreSQL.
#[test]
fn a_spooled_body_is_copied_byte_for_byte() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    let mut server = Server::start_with_extra(Extra::default());
    let mut big = simple_message("big", "above the threshold").into_bytes();
    for i in 0..60_000 {
        big.extend_from_slice(format!("line {i:06} of a message that is spooled\r\n").as_bytes());
    }
    assert!(big.len() > 1 << 21);
    pop3_kit::deliver(&server, "bob@example.test", &[&big]);
    let mut pop = Pop3::login(server.pop3, "bob@example.test", "secret");
    let before = pop.retr(1);
    pop.ok("QUIT");
    assert!(before.ends_with(&big), "RETR before the copy");
    server.terminate();
    let out = migrate(&server, &url, 1000, None);
    assert!(out.status.success(), "{}", text(&out));
    use_postgres(&server, &url);
    server.spawn();
    let mut pop = Pop3::login(server.pop3, "bob@example.test", "secret");
    let after = pop.retr(1);
    pop.ok("QUIT");
    assert!(
        after == before,
        "{} octets after, {} before",
        after.len(),
        before.len()
    );
}

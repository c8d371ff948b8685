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
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!(
            "{base}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode_id = \"{node_id}\"\n"
        ),
    )
    .expect("write config");
    Some((server, url))
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

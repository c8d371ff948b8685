//! What the directory gives SMTP: aliases, lists, forwards (251/551),
//! VRFY, EXPN, HELP and the SEND/SOML/SAML family.

mod common;
use common::{Server, enhanced};

/// Outbound mail waits: a relay nothing listens on, retried in an hour
/// (issue 13: a failed row turns into a DSN and leaves the queue, so a
/// test that reads the queue must not let it fail).
const HOLD_OUTBOUND: &str =
    "[relay]\nsmarthost = \"127.0.0.1:9\"\nretry_initial = 3600\nretry_max = 3600";

const MSG: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

#[test]
fn vrfy_returns_full_name() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let r = c.cmd("VRFY alice", 250);
    assert_eq!(r.lines, vec!["Alice Liddell <alice@example.test>"]);
    assert_eq!(enhanced(&r), "2.1.5");
    c.cmd("VRFY Alice Liddell", 250);
    c.cmd("VRFY <ALICE@example.test>", 250);
}

#[test]
fn vrfy_ambiguous_is_553_with_candidates() {
    let server = Server::start();
    server.cli(&[
        "user",
        "add",
        "alice@other.test",
        "--name",
        "Alice Other",
        "--password",
        "x",
    ]);
    let mut c = server.connect().ehlo();
    let r = c.cmd("VRFY alice", 553);
    assert!(
        r.lines
            .iter()
            .any(|l| l == "Alice Liddell <alice@example.test>"),
        "{r:?}"
    );
    assert!(
        r.lines
            .iter()
            .any(|l| l == "Alice Other <alice@other.test>"),
        "{r:?}"
    );
}

#[test]
fn vrfy_unknown_is_550() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("VRFY nobody", 550)), "5.1.1");
}

#[test]
fn vrfy_is_252_when_configured_for_privacy() {
    let server = Server::start_with("", "vrfy = \"252\"");
    let mut c = server.connect().ehlo();
    c.cmd("VRFY alice", 252);
    c.cmd("VRFY nobody", 252);
}

#[test]
fn expn_lists_members() {
    let server = Server::start();
    server.cli(&[
        "list",
        "add",
        "team@example.test",
        "alice@example.test",
        "bob@example.test",
        "Carol@remote.test",
    ]);
    let mut c = server.connect().ehlo();
    let r = c.cmd("EXPN team", 250);
    assert_eq!(
        r.lines,
        vec![
            "Alice Liddell <alice@example.test>",
            "Bob Smith <bob@example.test>",
            "<Carol@remote.test>"
        ]
    );
    assert_eq!(enhanced(&c.cmd("EXPN alice", 550)), "5.1.1");
}

#[test]
fn expn_disabled_is_502() {
    let server = Server::start_with("", "expn = false");
    server.cli(&["list", "add", "team@example.test", "alice@example.test"]);
    let mut c = server.connect().ehlo();
    c.cmd("EXPN team", 502);
}

#[test]
fn help_lists_commands_and_per_command_syntax() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    let r = c.cmd("HELP", 214);
    assert!(
        r.lines
            .iter()
            .any(|l| l.contains("MAIL") && l.contains("EXPN")),
        "{r:?}"
    );
    let r = c.cmd("HELP mail", 214);
    assert!(r.lines[0].starts_with("MAIL FROM:<reverse-path>"), "{r:?}");
    assert_eq!(enhanced(&c.cmd("HELP FROBNICATE", 504)), "5.5.1");
}

#[test]
fn alias_delivers_to_every_target() {
    let server = Server::start();
    server.cli(&["alias", "add", "info@example.test", "alice@example.test"]);
    server.cli(&["alias", "add", "info@example.test", "bob@example.test"]);
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail("x@remote.test", &["info@example.test"], MSG)
            .code,
        250
    );
    assert_eq!(server.inbox("alice@example.test").len(), 1);
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn recipient_reached_directly_and_through_a_list_gets_one_copy() {
    let server = Server::start();
    server.cli(&[
        "list",
        "add",
        "team@example.test",
        "alice@example.test",
        "bob@example.test",
    ]);
    let mut c = server.connect().ehlo();
    let r = c.send_mail(
        "x@remote.test",
        &[
            "alice@example.test",
            "team@example.test",
            "ALICE@example.test",
        ],
        MSG,
    );
    assert_eq!(r.code, 250);
    assert_eq!(server.inbox("alice@example.test").len(), 1);
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn alias_cycle_is_cut_not_followed_forever() {
    let server = Server::start();
    server.cli(&[
        "alias",
        "add",
        "a@example.test",
        "b@example.test",
        "alice@example.test",
    ]);
    // `alias add` refuses the cycle; a directory written by an older
    // version (or by hand) may still hold one, and delivery cuts it.
    let refused = server.cli_output(&["alias", "add", "b@example.test", "a@example.test"], None);
    assert_eq!(refused.status.code(), Some(1));
    rusqlite::Connection::open(server.data_dir().join("directory.db"))
        .and_then(|db| {
            db.execute(
                "INSERT INTO aliases (address, target) VALUES ('b@example.test', 'a@example.test')",
                [],
            )
        })
        .expect("write the cycle by hand");
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail("x@remote.test", &["a@example.test"], MSG).code,
        250
    );
    assert_eq!(server.inbox("alice@example.test").len(), 1);
}

#[test]
fn plus_detail_delivers_to_the_base_user() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail("x@remote.test", &["alice+news@example.test"], MSG)
            .code,
        250
    );
    assert_eq!(server.inbox("alice@example.test").len(), 1);
}

#[test]
fn catch_all_takes_unknown_local_parts() {
    let server = Server::start_with("[catch_all]\n\"other.test\" = \"bob@example.test\"", "");
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail("x@remote.test", &["whoever@other.test"], MSG)
            .code,
        250
    );
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn forward_gives_251_and_queues_for_the_new_address() {
    let server = Server::start_with(HOLD_OUTBOUND, "");
    server.cli(&["forward", "set", "bob@example.test", "Bob@elsewhere.test"]);
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    let r = c.cmd("RCPT TO:<bob@example.test>", 251);
    assert_eq!(
        r.lines,
        vec!["User not local; will forward to <Bob@elsewhere.test>"]
    );
    c.cmd("DATA", 354);
    c.send_raw(MSG);
    c.cmd(".", 250);
    // Forwarded: it leaves with an SRS reverse-path (issue 13).
    let queue = server.queue();
    assert_eq!(queue.len(), 1);
    let (sender, rcpt) = &queue[0];
    assert_eq!(rcpt, "Bob@elsewhere.test");
    assert!(sender.starts_with("SRS0="), "{sender}");
    assert!(sender.ends_with("=remote.test=x@example.test"), "{sender}");
    assert!(server.inbox("bob@example.test").is_empty());
}

#[test]
fn forward_keep_delivers_a_local_copy_too() {
    let server = Server::start_with(HOLD_OUTBOUND, "");
    server.cli(&[
        "forward",
        "set",
        "bob@example.test",
        "bob@elsewhere.test",
        "--keep",
    ]);
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<bob@example.test>", 251);
    c.cmd("DATA", 354);
    c.send_raw(MSG);
    c.cmd(".", 250);
    assert_eq!(server.inbox("bob@example.test").len(), 1);
    assert_eq!(server.queue().len(), 1);
}

#[test]
fn forward_refuse_gives_551_with_the_new_address() {
    let server = Server::start();
    server.cli(&[
        "forward",
        "set",
        "bob@example.test",
        "bob@elsewhere.test",
        "--refuse",
    ]);
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    let r = c.cmd("RCPT TO:<bob@example.test>", 551);
    assert_eq!(
        r.lines,
        vec!["User not local; please try <bob@elsewhere.test>"]
    );
    server.cli(&["forward", "del", "bob@example.test"]);
    c.cmd("RCPT TO:<bob@example.test>", 250);
}

#[test]
fn send_to_inactive_user_is_450() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("SEND FROM:<x@remote.test>", 250);
    let r = c.cmd("RCPT TO:<alice@example.test>", 450);
    assert_eq!(enhanced(&r), "4.2.1");
}

#[test]
fn soml_and_saml_to_inactive_user_go_to_the_mailbox() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    for verb in ["SOML", "SAML"] {
        c.cmd(&format!("{verb} FROM:<x@remote.test>"), 250);
        c.cmd("RCPT TO:<alice@example.test>", 250);
        c.cmd("DATA", 354);
        c.send_raw(MSG);
        c.cmd(".", 250);
    }
    assert_eq!(server.inbox("alice@example.test").len(), 2);
}

#[test]
fn legacy_send_disabled_is_502_and_not_advertised() {
    let server = Server::start_with("", "legacy_send = false");
    let mut c = server.connect();
    c.expect(220);
    let r = c.cmd("EHLO client.example", 250);
    assert!(
        !r.lines
            .iter()
            .any(|l| l == "SEND" || l == "SOML" || l == "SAML")
    );
    c.cmd("SEND FROM:<x@remote.test>", 502);
    c.cmd("SOML FROM:<x@remote.test>", 502);
    c.cmd("SAML FROM:<x@remote.test>", 502);
}

#[test]
fn cli_changes_take_effect_without_restart() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<carol@example.test>", 550);
    server.cli(&["user", "add", "carol@example.test", "--password", "pw"]);
    c.cmd("RCPT TO:<carol@example.test>", 250);
    server.cli(&["user", "del", "carol@example.test"]);
    c.cmd("RCPT TO:<carol@example.test>", 550);
}

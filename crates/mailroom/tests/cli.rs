//! The command line of SPEC 7: names, exit codes, errors, and that its
//! changes reach a running server.

mod common;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, Server};

#[test]
fn user_add_without_password_fails_with_exit_1() {
    let server = Server::create("", "");
    let out = server.cli_output(&["user", "add", "carol@example.test"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn user_add_in_unknown_domain_fails_clearly() {
    let server = Server::create("", "");
    let out = server.cli_output(
        &["user", "add", "carol@nowhere.test", "--password", "x"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere.test"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn password_stdin_and_list_and_del() {
    let server = Server::create("", "");
    let out = server.cli_output(
        &[
            "user",
            "add",
            "carol@example.test",
            "--name",
            "Carol C",
            "--password-stdin",
        ],
        Some(b"pw\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = server.cli(&["user", "list"]);
    assert!(list.contains("carol@example.test\tCarol C"), "{list}");
    server.cli(&["user", "passwd", "carol@example.test", "--password", "new"]);
    server.cli(&["user", "del", "carol@example.test"]);
    assert!(!server.cli(&["user", "list"]).contains("carol"));
    let out = server.cli_output(&["user", "del", "carol@example.test"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn alias_and_list_add_on_existing_address_add_targets_and_del_removes() {
    let server = Server::create("", "");
    server.cli(&["alias", "add", "info@example.test", "a@remote.test"]);
    server.cli(&["alias", "add", "info@example.test", "b@remote.test"]);
    let aliases = server.cli(&["alias", "list"]);
    assert!(
        aliases.contains("a@remote.test") && aliases.contains("b@remote.test"),
        "{aliases}"
    );
    server.cli(&["alias", "del", "info@example.test", "a@remote.test"]);
    assert!(!server.cli(&["alias", "list"]).contains("a@remote.test"));
    server.cli(&["list", "add", "team@example.test", "x@remote.test"]);
    server.cli(&["list", "add", "team@example.test", "y@remote.test"]);
    server.cli(&["list", "del", "team@example.test", "x@remote.test"]);
    let lists = server.cli(&["list", "show"]);
    assert!(
        lists.contains("y@remote.test") && !lists.contains("x@remote.test"),
        "{lists}"
    );
    server.cli(&["list", "del", "team@example.test"]);
    assert!(!server.cli(&["list", "show"]).contains("team"));
}

#[test]
fn deliver_reads_stdin_into_the_inbox() {
    let server = Server::create("", "");
    server.cli(&["user", "add", "alice@example.test", "--password", "x"]);
    let out = server.cli_output(
        &["deliver", "alice", "--from", "lda@remote.test"],
        Some(b"Subject: lda\n\nbody\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inbox = server.inbox("alice@example.test");
    assert_eq!(
        inbox,
        vec![b"Return-Path: <lda@remote.test>\r\nSubject: lda\r\n\r\nbody\r\n".to_vec()]
    );
    let out = server.cli_output(&["deliver", "nobody@example.test"], Some(b"x\n"));
    assert_eq!(out.status.code(), Some(67), "EX_NOUSER");
}

/// `mailroom ARGS` in `cwd`, with `MAILROOM_CONFIG` set to `env` (or
/// unset), without a --config flag.
fn mailroom_in(cwd: &Path, env: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args).stdin(Stdio::null());
    match env {
        Some(p) => cmd.env("MAILROOM_CONFIG", p),
        None => cmd.env_remove("MAILROOM_CONFIG"),
    };
    cmd.output().expect("run mailroom")
}

#[test]
fn cli_without_a_config_never_creates_a_data_directory_silently() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = mailroom_in(cwd.path(), None, &["user", "add", "u", "--password", "pw"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("quick-start defaults"), "{err}");
    assert!(!cwd.path().join("mailroom-data").exists());
    let out = mailroom_in(
        cwd.path(),
        None,
        &["--create-data-dir", "user", "add", "u", "--password", "pw"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.path().join("mailroom-data/directory.db").exists());
}

#[test]
fn config_is_found_by_flag_then_variable_then_current_folder() {
    let server = Server::create("", "");
    server.cli(&["user", "add", "carol@example.test", "--password", "pw"]);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    // MAILROOM_CONFIG, from another folder.
    let out = mailroom_in(elsewhere.path(), Some(&server.config), &["user", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("carol@example.test"));
    // ./mailroom.toml in the current folder.
    let out = mailroom_in(server.dir.path(), None, &["user", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("carol@example.test"));
    // The flag wins over the variable; a named file that is missing is an
    // error, not the defaults.
    let missing = elsewhere.path().join("nope.toml");
    let config = server.config.display().to_string();
    let out = mailroom_in(
        elsewhere.path(),
        Some(&missing),
        &["--config", &config, "user", "list"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("carol@example.test"));
    let out = mailroom_in(elsewhere.path(), Some(&missing), &["user", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn deliver_to_an_alias_with_a_remote_target_queues_a_copy_without_return_path() {
    // The outbound relay is one nothing listens on, retried in an hour:
    // the row stays to be looked at (a failure would leave for its DSN).
    let server = Server::start_with(
        "[relay]\nsmarthost = \"127.0.0.1:9\"\nretry_initial = 3600\nretry_max = 3600",
        "",
    );
    server.cli(&[
        "alias",
        "add",
        "fwd@example.test",
        "alice@example.test",
        "carol@remote.example",
    ]);
    let out = server.cli_output(
        &["deliver", "fwd@example.test", "--from", "bob@example.org"],
        Some(b"Return-Path: <forged@x.test>\nSubject: via the lda\n\nbody\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // RFC 5321 4.4: Return-Path only on the final delivery, never relayed.
    let queued = server.queue_bodies();
    assert_eq!(queued.len(), 1);
    let relayed = String::from_utf8_lossy(&queued[0]);
    assert!(!relayed.contains("Return-Path"), "{relayed}");
    assert!(relayed.starts_with("Subject: via the lda\r\n"), "{relayed}");
    // Forwarded for a sender elsewhere: SRS, as SMTP does (issue 13).
    let (sender, rcpt) = server.queue().remove(0);
    assert_eq!(rcpt, "carol@remote.example");
    assert!(sender.starts_with("SRS0="), "{sender}");
    assert!(
        sender.ends_with("=example.org=bob@example.test"),
        "{sender}"
    );
    let local = server.inbox("alice@example.test");
    let local = String::from_utf8_lossy(&local[0]);
    assert!(
        local.starts_with("Return-Path: <bob@example.org>\r\nSubject: via the lda\r\n"),
        "{local}"
    );
    assert!(!local.contains("forged"), "{local}");
}

#[test]
fn deliver_exits_with_sysexits_codes() {
    let server = Server::create("", "");
    server.cli(&["user", "add", "alice@example.test", "--password", "x"]);
    let code = |args: &[&str], stdin: &[u8]| server.cli_output(args, Some(stdin)).status.code();
    assert_eq!(code(&["deliver", "alice"], b""), Some(65), "empty message");
    assert_eq!(
        code(&["deliver", "nobody"], b"x\n"),
        Some(67),
        "no such user"
    );
    assert_eq!(
        code(&["deliver", "a@@b"], b"x\n"),
        Some(64),
        "not an address"
    );
    assert_eq!(code(&["deliver"], b"x\n"), Some(64), "missing argument");
    assert!(server.inbox("alice@example.test").is_empty());

    // The store locked by another writer past its busy timeout: try later.
    let db = rusqlite::Connection::open(server.data_dir().join("store.db")).expect("open");
    db.execute_batch("BEGIN IMMEDIATE").expect("lock");
    assert_eq!(
        code(&["deliver", "alice"], b"x\n"),
        Some(75),
        "temporary failure"
    );
    db.execute_batch("ROLLBACK").expect("unlock");
    assert_eq!(code(&["deliver", "alice"], b"x\n"), Some(0));

    // A config that cannot be used.
    std::fs::write(&server.config, "domains = 5\n").expect("write");
    assert_eq!(code(&["deliver", "alice"], b"x\n"), Some(78), "bad config");
    std::fs::write(&server.config, "data_dir = \"/nonexistent/mailroom\"\n").expect("write");
    assert_eq!(
        code(&["deliver", "alice"], b"x\n"),
        Some(78),
        "no data directory"
    );
}

#[test]
fn forward_set_needs_an_existing_user() {
    let server = Server::create("", "");
    let out = server.cli_output(
        &["forward", "set", "ghost@example.test", "x@remote.test"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
        vec!["user", "del", "--help"],
        vec!["user", "passwd", "--help"],
        vec!["user", "list", "--help"],
        vec!["alias", "add", "--help"],
        vec!["alias", "del", "--help"],
        vec!["list", "add", "--help"],
        vec!["list", "del", "--help"],
        vec!["forward", "set", "--help"],
        vec!["forward", "del", "--help"],
        vec!["deliver", "--help"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn bad_config_names_the_key_and_exits_1() {
    let server = Server::create("", "max_recipents = 5");
    let out = server.cli_output(&["user", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_recipents"));
}

#[test]
fn alias_cycle_is_refused_and_a_dangling_target_warned() {
    let server = Server::create("", "");
    let out = server.cli_output(&["alias", "add", "a1", "a2"], None);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: a2@example.test does not exist"),
        "{err}"
    );
    let out = server.cli_output(&["alias", "add", "a2", "a1"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a2@example.test -> a1@example.test -> a2@example.test"),
        "{err}"
    );
    let aliases = server.cli(&["alias", "list"]);
    assert_eq!(aliases.trim(), "a1@example.test\ta2@example.test");
}

/// `[store] backend = "postgres"` with a database that does not answer:
/// `serve` and the CLI stop with an error that names PostgreSQL, without
/// printing the URL's password; an unknown backend stops at the config,
/// naming the key. (Serving on PostgreSQL: tests/postgres.rs.)
#[test]
fn store_backend_postgres_unreachable_is_a_clear_error_without_the_password() {
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    let with = |store: &str| {
        std::fs::write(&server.config, format!("{base}\n[store]\n{store}\n")).expect("write")
    };
    // Port 1 on loopback: nothing listens, the connection is refused.
    with("backend = \"postgres\"\nurl = \"postgres://mail:hunter2@127.0.0.1:1/mail\"");
    for args in [&["user", "list"][..], &["serve"][..]] {
        let out = server.cli_output(args, None);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("PostgreSQL"), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    with("backend = \"mysql\"");
    let out = server.cli_output(&["user", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.backend: 'mysql'"), "{err}");
    // Back to the default: the same data directory works.
    with("backend = \"sqlite\"");
    server.cli(&["user", "list"]);
}

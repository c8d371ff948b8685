//! The command line of SPEC 7: names, exit codes, errors, and that its
//! changes reach a running server.

mod common;
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
    assert_eq!(out.status.code(), Some(1));
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

//! The data directory is the server user's alone (SPEC 6): created 0700
//! with files 0600 (the SQLite WAL and shared-memory files included),
//! tightened at start when an older version left it readable, and refused
//! when another user owns it or others may write it.

mod common;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{BIN, Server};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every regular file in the data directory, with its mode.
fn file_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                mode(&e.path()),
            )
        })
        .collect();
    out.sort();
    out
}

/// `mailroom serve` on `server`'s config, expected to fail: its stderr.
fn serve_fails(server: &Server) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&server.config)
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success(), "serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn new_data_directory_is_0700_and_every_file_0600() {
    let mut server = Server::create("", "");
    let _ = std::fs::remove_dir(server.data_dir());
    server.spawn();
    server.cli(&["user", "add", "alice@example.test", "--password", "pw"]);
    server.connect().ehlo().send_mail(
        "a@remote.test",
        &["alice@example.test"],
        b"Subject: private\r\n\r\nbody\r\n",
    );
    assert_eq!(mode(&server.data_dir()), 0o700);
    let files = file_modes(&server.data_dir());
    for wanted in ["store.db", "store.db-wal", "store.db-shm", "directory.db"] {
        assert!(
            files.iter().any(|(n, _)| n == wanted),
            "{wanted}: {files:?}"
        );
    }
    assert!(files.iter().all(|&(_, m)| m == 0o600), "{files:?}");
}

#[test]
fn readable_data_directory_is_tightened_at_start_with_a_log_line() {
    let mut server = Server::create("", "");
    server.spawn();
    server.cli(&["user", "add", "alice@example.test", "--password", "pw"]);
    server.terminate();
    let data = server.data_dir();
    chmod(&data, 0o755);
    for (name, _) in file_modes(&data) {
        chmod(&data.join(name), 0o644);
    }
    server.spawn();
    assert_eq!(mode(&data), 0o700);
    let files = file_modes(&data);
    assert!(files.iter().all(|&(_, m)| m == 0o600), "{files:?}");
    let log = server.log();
    assert!(log.contains("tightened data directory"), "{log}");
    assert!(log.contains("store.db from mode 0644 to 0600"), "{log}");
}

#[test]
fn group_or_world_writable_data_directory_is_refused() {
    let server = Server::create("", "");
    std::fs::create_dir_all(server.data_dir()).expect("mkdir");
    for m in [0o775, 0o777] {
        chmod(&server.data_dir(), m);
        let err = serve_fails(&server);
        assert!(err.contains("writable by group or others"), "{err}");
    }
}

#[test]
fn data_directory_of_another_user_is_refused() {
    let server = Server::create("", "");
    let data = server.data_dir();
    std::fs::create_dir_all(&data).expect("mkdir");
    // The tests run as root in CI (scripts/test-deps installs packages), so
    // they can give the directory away; as another user, a directory of
    // root's is the "other user".
    let other = if std::fs::metadata(&data).expect("stat").uid() == 0 {
        let status = Command::new("chown")
            .arg("65534")
            .arg(&data)
            .status()
            .expect("chown");
        assert!(status.success());
        "65534"
    } else {
        std::fs::remove_dir(&data).expect("rmdir");
        std::os::unix::fs::symlink("/", &data).expect("symlink to root's /");
        "0"
    };
    let err = serve_fails(&server);
    assert!(err.contains(&format!("owned by uid {other}")), "{err}");
}

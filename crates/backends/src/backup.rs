//! `mailroom backup DIR` and `mailroom restore DIR` (SPEC 7, issue 20).
//!
//! Backup: a consistent copy of a running server's data directory. Each
//! SQLite database is copied with `VACUUM INTO`, which reads one snapshot
//! (a read transaction, WAL mode: writers go on meanwhile) and writes a
//! compact database file; everything else in the data directory (the TLS
//! key and certificate, secrets, keys) is copied as it is, modes kept.
//! The two databases are two snapshots: a `user del` between them is
//! safe to rerun after a restore (the directory is deleted from first).
//! On PostgreSQL a backup is the database's own business: `pg_dump`.
//!
//! Restore: only into a missing or empty data directory (so never under a
//! running server, which would have created its files there).

use std::path::{Path, PathBuf};

use crate::{Backend, BackendConfig, DIRECTORY_FILE};

/// The store's database file (SQLite backend).
const STORE_FILE: &str = "store.db";
/// What is never copied: SQLite's side files (the snapshot holds their
/// content) and the spool of messages still arriving.
const SKIP_SUFFIXES: &[&str] = &["-wal", "-shm", "-journal"];
const SKIP_DIRS: &[&str] = &["spool"];
/// The first 16 octets of every SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

fn empty_or_missing(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                Err(format!("{} is not empty", dir.display()))
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

fn make_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

fn sync_path(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Copies `from` into `to` (files with their modes, directories
/// recursively), skipping `skip`; returns the files copied.
fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&str, bool) -> bool,
) -> Result<Vec<PathBuf>, String> {
    let mut copied = Vec::new();
    for e in std::fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = e.file_type().map_err(io(&e.path()))?;
        if skip(&name, kind.is_dir()) {
            continue;
        }
        let dest = to.join(&name);
        if kind.is_dir() {
            make_private_dir(&dest)?;
            copied.extend(copy_tree(&e.path(), &dest, &|_, _| false)?);
            sync_path(&dest)?;
        } else if kind.is_file() {
            // std::fs::copy keeps the permission bits (0600 keys stay so).
            std::fs::copy(e.path(), &dest).map_err(io(&dest))?;
            sync_path(&dest)?;
            copied.push(dest);
        }
    }
    Ok(copied)
}

/// `VACUUM INTO`: one consistent snapshot of `db` written to `dest`.
fn snapshot(db: &Path, dest: &Path) -> Result<(), String> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", db.display()))?;
    // A writer may hold the database for a moment.
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let target = dest
        .to_str()
        .ok_or_else(|| format!("{}: not UTF-8", dest.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("{}: {e}", db.display()))?;
    sync_path(dest)
}

/// Writes a backup of `config`'s data into `dest` (missing or empty);
/// returns the files written.
pub fn backup(config: &BackendConfig, dest: &Path) -> Result<Vec<PathBuf>, String> {
    if config.backend == Backend::Postgres {
        return Err("store.backend = \"postgres\": back up the database with pg_dump".into());
    }
    empty_or_missing(dest)?;
    let data = &config.data_dir;
    for db in [STORE_FILE, DIRECTORY_FILE] {
        if !data.join(db).is_file() {
            return Err(format!(
                "{} has no {db}: nothing to back up",
                data.display()
            ));
        }
    }
    make_private_dir(dest)?;
    let mut written = Vec::new();
    for db in [STORE_FILE, DIRECTORY_FILE] {
        let to = dest.join(db);
        snapshot(&data.join(db), &to)?;
        written.push(to);
    }
    let skip = |name: &str, is_dir: bool| {
        name == STORE_FILE
            || name == DIRECTORY_FILE
            || SKIP_SUFFIXES.iter().any(|s| name.ends_with(s))
            || (is_dir && SKIP_DIRS.contains(&name))
    };
    written.extend(copy_tree(data, dest, &skip)?);
    sync_path(dest)?;
    Ok(written)
}

/// Restores the backup in `src` into `config`'s data directory, which must
/// be missing or empty; returns the files written.
pub fn restore(config: &BackendConfig, src: &Path) -> Result<Vec<PathBuf>, String> {
    if config.backend == Backend::Postgres {
        return Err("store.backend = \"postgres\": restore the database with pg_restore".into());
    }
    for db in [STORE_FILE, DIRECTORY_FILE] {
        let f = src.join(db);
        let mut head = [0u8; 16];
        let ok = std::fs::File::open(&f)
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
            .is_ok();
        if !ok || head != SQLITE_MAGIC {
            return Err(format!(
                "{} is not a mailroom backup (no {db})",
                src.display()
            ));
        }
    }
    let data = &config.data_dir;
    empty_or_missing(data)
        .map_err(|e| format!("{e}: restore only into a missing or empty data directory"))?;
    make_private_dir(data)?;
    let skip = |name: &str, is_dir: bool| {
        SKIP_SUFFIXES.iter().any(|s| name.ends_with(s)) || (is_dir && SKIP_DIRS.contains(&name))
    };
    let written = copy_tree(src, data, &skip)?;
    sync_path(data)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use directory::DirectoryConfig;

    #[tokio::test]
    async fn a_backup_restores_into_an_empty_directory_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        make_private_dir(&data).unwrap();
        let config = BackendConfig::sqlite(&data, DirectoryConfig::default());
        let store = crate::open_store(&config).unwrap();
        let dir = crate::open_directory(&config).unwrap();
        let account = dir.add_user("u@localhost", None, "pw").await.unwrap();
        store.ensure_account(account.clone()).await.unwrap();
        std::fs::write(data.join("tls-key.pem"), "secret").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("tls-key.pem"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let out = tmp.path().join("backup");
        let files = backup(&config, &out).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        // Not over an existing backup.
        assert!(backup(&config, &out).unwrap_err().contains("not empty"));
        // Not over a live data directory.
        let err = restore(&config, &out).unwrap_err();
        assert!(err.contains("missing or empty"), "{err}");
        let fresh = BackendConfig::sqlite(tmp.path().join("new"), DirectoryConfig::default());
        restore(&fresh, &out).unwrap();
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(tmp.path().join("new/tls-key.pem"))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode & 0o777, 0o600);
        let store2 = crate::open_store(&fresh).unwrap();
        let dir2 = crate::open_directory(&fresh).unwrap();
        assert_eq!(
            dir2.find_login("u").await.unwrap().as_deref(),
            Some(account.as_str())
        );
        assert_eq!(store2.mailboxes(account).await.unwrap().len(), 6);
        // Something that is not a backup is refused.
        let junk = tmp.path().join("junk");
        make_private_dir(&junk).unwrap();
        let other = BackendConfig::sqlite(tmp.path().join("other"), DirectoryConfig::default());
        assert!(
            restore(&other, &junk)
                .unwrap_err()
                .contains("not a mailroom backup")
        );
    }
}

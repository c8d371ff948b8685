//! Protection of the data directory (SPEC 6): it holds every message and
//! every password hash, so it is readable by the server's user alone:
//! the directory 0700, its files 0600.
//!
//! Three layers, because SQLite creates files on its own (the WAL and the
//! shared-memory index appear at the first write, with the database
//! file's mode less the umask):
//! - [`restrict_umask`] makes everything this process creates private from
//!   its first byte, whichever code creates it;
//! - [`prepare`] creates a missing directory 0700, and tightens what an
//!   older version left world-readable, saying so;
//! - it refuses a directory another user owns or that group or others may
//!   write: someone else could have replaced the store or read it.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Mode of the data directory: the owner alone (SPEC 6).
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it (SPEC 6).
pub const FILE_MODE: u32 = 0o600;
/// The umask that yields [`DIR_MODE`] and [`FILE_MODE`] for new entries.
pub const UMASK: u32 = 0o077;
/// Permission bits for group and others: none may be set.
const GROUP_OTHER: u32 = 0o077;
/// Write permission for group or others: a directory with it is refused.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// Permission bits (without the file type and set-id bits).
const PERMISSION_BITS: u32 = 0o777;

/// Makes every file and directory this process creates private.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// Whether a missing data directory may be created (SPEC 7: only `serve`
/// and `restore`, or a command given `--create-data-dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Create,
    Refuse,
}

/// Makes `dir` a private data directory, or says why it cannot be used.
/// `note` receives one line per mode tightened, for the log or the
/// terminal.
pub fn prepare(dir: &Path, missing: Missing, note: &mut dyn FnMut(String)) -> Result<(), String> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if missing == Missing::Refuse {
                return Err(format!(
                    "data directory {shown} does not exist (wrong --config? \
                     `mailroom serve` creates it, or give --create-data-dir)"
                ));
            }
            // The store logs its creation; nothing was changed to report.
            return create(dir);
        }
        Err(e) => return Err(format!("cannot read data directory {shown}: {e}")),
    };
    if !meta.is_dir() {
        return Err(format!("data directory {shown} is not a directory"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "data directory {shown} is owned by uid {}, not by this user (uid {me}); \
             refusing to use it",
            meta.uid()
        ));
    }
    let mode = meta.mode() & PERMISSION_BITS;
    if mode & GROUP_OTHER_WRITE != 0 {
        return Err(format!(
            "data directory {shown} is writable by group or others (mode {mode:04o}); \
             refusing to use it: check its contents, then chmod 700 it"
        ));
    }
    if mode & GROUP_OTHER != 0 {
        set_mode(dir, DIR_MODE)?;
        note(format!(
            "tightened data directory {shown} from mode {mode:04o} to 0700"
        ));
    }
    tighten_files(dir, me, note)
}

/// Creates the directory and its parents, 0700, and makes the new entry
/// durable (the store's files will be fsynced; their directory must be).
fn create(dir: &Path) -> Result<(), String> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    for d in [
        Some(dir),
        dir.parent().filter(|p| !p.as_os_str().is_empty()),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot fsync {}: {e}", d.display()))?;
    }
    Ok(())
}

/// Brings every regular file in the directory to 0600. Files owned by
/// someone else are refused like the directory. Symbolic links are left
/// alone: their mode means nothing and their target is not ours to change.
fn tighten_files(dir: &Path, me: u32, note: &mut dyn FnMut(String)) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list data directory {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            continue;
        }
        if meta.uid() != me {
            return Err(format!(
                "{} is owned by uid {}, not by this user (uid {me}); refusing to use it",
                path.display(),
                meta.uid()
            ));
        }
        let mode = meta.mode() & PERMISSION_BITS;
        if mode & GROUP_OTHER != 0 {
            let tight = mode & FILE_MODE;
            set_mode(&path, tight)?;
            note(format!(
                "tightened {} from mode {mode:04o} to {tight:04o}",
                path.display()
            ));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.mode() & PERMISSION_BITS)
            .unwrap_or(0)
    }

    #[test]
    fn missing_directory_is_created_0700_or_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/data");
        let mut notes = Vec::new();
        let err = prepare(&dir, Missing::Refuse, &mut |n| notes.push(n)).expect_err("refused");
        assert!(err.contains("--create-data-dir"), "{err}");
        assert!(!dir.exists());
        prepare(&dir, Missing::Create, &mut |n| notes.push(n)).expect("created");
        assert_eq!(mode_of(&dir), DIR_MODE);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn readable_directory_and_files_are_tightened_with_a_note() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let file = dir.join("store.db-wal");
        std::fs::write(&file, b"x").expect("write");
        set_mode(&file, 0o644).expect("chmod");
        set_mode(dir, 0o755).expect("chmod");
        let mut notes = Vec::new();
        prepare(dir, Missing::Refuse, &mut |n| notes.push(n)).expect("prepared");
        assert_eq!(mode_of(dir), DIR_MODE);
        assert_eq!(mode_of(&file), FILE_MODE);
        assert_eq!(notes.len(), 2, "{notes:?}");
        // A second start changes nothing and says nothing.
        notes.clear();
        prepare(dir, Missing::Refuse, &mut |n| notes.push(n)).expect("prepared");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn group_or_world_writable_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for mode in [0o770, 0o702, 0o777] {
            set_mode(tmp.path(), mode).expect("chmod");
            let err = prepare(tmp.path(), Missing::Refuse, &mut |_| {}).expect_err("refused");
            assert!(err.contains("writable by group or others"), "{err}");
            assert_eq!(mode_of(tmp.path()), mode, "left as it was");
        }
    }
}

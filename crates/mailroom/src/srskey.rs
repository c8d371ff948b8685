//! The SRS key (issue 13): `[relay] srs_secret`, or one made on first
//! use in the data directory (`srs.key`, 0600, like every file there), so
//! that the server and `mailroom deliver` rewrite and check alike.

use std::path::Path;

/// The file in the data directory holding the generated SRS secret.
const SRS_SECRET_FILE: &str = "srs.key";

/// SRS for forwarded mail (issue 13): `[relay] srs_secret`, or the key
/// in the data directory, made on first use. The new key is written to a
/// file of its own, fsynced, then linked into place: the key file is
/// never seen empty or half-written, and of two processes making one at
/// once (the server and `mailroom deliver`) the first link wins and both
/// use it.
pub fn load(
    data_dir: &Path,
    configured: &str,
    primary: &str,
) -> Result<delivery::srs::Srs, String> {
    if !configured.is_empty() {
        return Ok(delivery::srs::Srs::new(configured.as_bytes(), primary));
    }
    let path = data_dir.join(SRS_SECRET_FILE);
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        Ok(_) => return Err(format!("{}: empty", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let secret = delivery::srs::generate_secret()?;
            let tmp = data_dir.join(format!("{SRS_SECRET_FILE}.{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(crate::datadir::FILE_MODE)
                .open(&tmp)
                .map_err(shown)?;
            f.write_all(secret.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(shown)?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    // The directory entry itself is durable too.
                    if let Ok(d) = std::fs::File::open(data_dir) {
                        let _ = d.sync_all();
                    }
                    tracing::info!(path = %path.display(), "made a new SRS key");
                    secret
                }
                // Another process linked its key first: that one counts.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read_to_string(&path)
                        .map_err(shown)?
                        .trim()
                        .to_string()
                }
                Err(e) => return Err(shown(e)),
            }
        }
        Err(e) => return Err(shown(e)),
    };
    Ok(delivery::srs::Srs::new(secret.as_bytes(), primary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load(dir.path(), "", "example.test").expect("made");
        let path = dir.path().join(SRS_SECRET_FILE);
        let mode = std::fs::metadata(&path).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load(dir.path(), "", "example.test").expect("read");
        let addr = a.forward("x@o.example", 100);
        let (local, _) = addr.rsplit_once('@').expect("address");
        assert!(b.reverse(local, 100).is_ok(), "the same key");
        let only_key = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(only_key, 1, "no temporary file left");
        // A configured secret is used as it is, and nothing is written.
        let other = tempfile::tempdir().expect("tempdir");
        let c = load(other.path(), "configured", "example.test").expect("configured");
        assert!(c.reverse(local, 100).is_err());
        assert_eq!(std::fs::read_dir(other.path()).expect("dir").count(), 0);
    }
}

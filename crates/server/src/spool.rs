//! The spool (issue 19): a message bigger than `[store] spool_threshold`
//! goes to a file under `<data_dir>/spool` while it arrives (SMTP DATA and
//! BDAT, IMAP APPEND), as Postfix writes its queue file, so a session holds
//! at most about the threshold in memory whatever the message's size. The
//! store then copies the file into the database a chunk at a time
//! ([`store::Store::deliver_all_spooled`], [`store::Store::append_spooled`]).
//!
//! A spool file is unlinked as soon as it is created: it lives as long as
//! its open descriptor, so neither a finished transaction nor a `kill -9`
//! leaves one behind, and the message is durable only once the store has
//! committed it (the ack comes after that, SPEC 6). The directory is
//! emptied at start anyway, for files of a process killed between the
//! create and the unlink. Directory 0700, files 0600 (SPEC 6: mail is the
//! server user's alone).
//!
//! Disk full while spooling is a temporary error: SMTP `452 4.3.1`, IMAP
//! `NO`, and the session goes on (SPEC 6).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use store::Spooled;

/// Default `[store] spool_threshold`: messages above 1 MiB are spooled.
/// Most mail is far smaller and never touches the disk twice; a big one
/// costs a session about this much memory instead of its size.
pub const DEFAULT_SPOOL_THRESHOLD: usize = 1024 * 1024;

/// The most of a spooled message's header section read back into memory
/// for the header work (trace fields, the loop count, cleaning): RFC 5322
/// sets no limit on the header, so one is ours; fields past it are passed
/// on as they are, uninspected.
pub const MAX_SPOOLED_HEAD: usize = 256 * 1024;

/// The spool file's write buffer, and how much a receiver holds before it
/// hands its octets to the writer: small against the threshold, so that a
/// message in flight costs about the threshold, not a multiple of it.
pub const SPOOL_BUFFER: usize = 64 * 1024;

/// Why a message could not be spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolError {
    /// ENOSPC or EDQUOT: `452 4.3.1` / `NO`, try later.
    DiskFull,
    /// Any other I/O error: `451 4.3.0` / `NO`.
    Io(String),
}

impl SpoolError {
    fn of(e: &io::Error) -> SpoolError {
        // ENOSPC 28, EDQUOT 122 on Linux; ErrorKind::StorageFull is the
        // portable name for the first.
        if e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122)) {
            SpoolError::DiskFull
        } else {
            SpoolError::Io(e.to_string())
        }
    }
}

/// The spool directory of one server.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    threshold: usize,
    next: AtomicU64,
}

impl Spool {
    /// Creates `dir` (mode 0700) if missing and removes every file in it:
    /// what a crashed process left there is no one's message any more.
    pub fn open(dir: &Path, threshold: usize) -> io::Result<Spool> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // An existing directory too: it holds mail.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            threshold,
            next: AtomicU64::new(0),
        })
    }

    /// The spool directory of a server that may be running, for another
    /// process (`mailroom deliver`): created (0700) if missing but not
    /// emptied, since the files in it may be the server's; names carry
    /// the process id, so the two never collide.
    pub fn attach(dir: &Path, threshold: usize) -> io::Result<Spool> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            threshold,
            next: AtomicU64::new(0),
        })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// A writer for one message.
    pub fn writer(self: &Arc<Self>) -> SpoolWriter {
        SpoolWriter {
            target: Target::Dir(Arc::clone(self)),
            mem: Vec::new(),
            file: None,
            len: 0,
            failed: None,
            nul: false,
        }
    }

    /// A new spool file, already unlinked.
    fn create(&self) -> io::Result<File> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}

/// Where a writer spills.
#[derive(Debug)]
enum Target {
    /// No spool configured: everything stays in memory.
    Memory,
    Dir(Arc<Spool>),
    /// A file given by a test (`/dev/full`), past `threshold`.
    #[cfg(test)]
    File(Option<File>, usize),
}

/// One message on its way in: in memory up to the threshold, then in a
/// spool file. Errors are kept and reported once, at [`SpoolWriter::finish`],
/// so the session reads the rest of the message and answers in step.
#[derive(Debug)]
pub struct SpoolWriter {
    target: Target,
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    len: u64,
    failed: Option<SpoolError>,
    nul: bool,
}

impl Default for SpoolWriter {
    fn default() -> Self {
        SpoolWriter::in_memory()
    }
}

impl SpoolWriter {
    /// A writer that never spools (no spool configured).
    pub fn in_memory() -> SpoolWriter {
        SpoolWriter {
            target: Target::Memory,
            mem: Vec::new(),
            file: None,
            len: 0,
            failed: None,
            nul: false,
        }
    }

    /// A writer whose spill goes to `file` (tests inject `/dev/full`).
    #[cfg(test)]
    pub fn spilling_to(file: File, threshold: usize) -> SpoolWriter {
        SpoolWriter {
            target: Target::File(Some(file), threshold),
            ..SpoolWriter::in_memory()
        }
    }

    /// Octets written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Octets held in memory (for the memory budget).
    pub fn in_memory_len(&self) -> usize {
        self.mem.len() + if self.file.is_some() { SPOOL_BUFFER } else { 0 }
    }

    pub fn failed(&self) -> Option<&SpoolError> {
        self.failed.as_ref()
    }

    /// Drops everything written (the message is refused).
    pub fn discard(&mut self) {
        self.mem = Vec::new();
        self.file = None;
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() || bytes.is_empty() {
            return;
        }
        self.len = self.len.saturating_add(bytes.len() as u64);
        self.nul = self.nul || bytes.contains(&0);
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.write_all(bytes) {
                self.fail(&e);
            }
            return;
        }
        let threshold = match &self.target {
            Target::Memory => usize::MAX,
            Target::Dir(s) => s.threshold,
            #[cfg(test)]
            Target::File(_, t) => *t,
        };
        if self.mem.len().saturating_add(bytes.len()) <= threshold {
            self.mem.extend_from_slice(bytes);
            return;
        }
        // Past the threshold: what is in memory and these bytes go to a
        // new spool file, and so does the rest.
        let opened = match &mut self.target {
            Target::Memory => return,
            Target::Dir(s) => s.create(),
            #[cfg(test)]
            Target::File(f, _) => f.take().ok_or_else(|| io::Error::other("used")),
        };
        let mut file = match opened {
            Ok(f) => BufWriter::with_capacity(SPOOL_BUFFER, f),
            Err(e) => return self.fail(&e),
        };
        let mem = std::mem::take(&mut self.mem);
        if let Err(e) = file.write_all(&mem).and_then(|()| file.write_all(bytes)) {
            return self.fail(&e);
        }
        self.file = Some(file);
    }

    fn fail(&mut self, e: &io::Error) {
        let err = SpoolError::of(e);
        tracing::warn!(error = %e, "spool: cannot write the message");
        self.failed = Some(err);
        self.discard();
    }

    /// The message: whole in memory, or its header section in memory and
    /// the rest in the spool file.
    pub fn finish(mut self) -> Result<Message, SpoolError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let Some(file) = self.file.take() else {
            return Ok(Message {
                head: std::mem::take(&mut self.mem),
                tail: None,
                nul: self.nul,
            });
        };
        let err = |e: io::Error| SpoolError::of(&e);
        let mut file = file.into_inner().map_err(|e| err(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        let mut head = Vec::new();
        (&mut file)
            .take(MAX_SPOOLED_HEAD as u64)
            .read_to_end(&mut head)
            .map_err(err)?;
        head.truncate(head_end(&head));
        // Held until the store has committed: no more than the header.
        head.shrink_to_fit();
        let tail = Spooled::new(file, head.len() as u64, self.len - head.len() as u64);
        Ok(Message {
            head,
            tail: Some(tail),
            nul: self.nul,
        })
    }
}

/// Where the in-memory head of a spooled message ends: after the blank
/// line that ends the header section, else after the last line break (a
/// field is never cut), else all of it.
fn head_end(buf: &[u8]) -> usize {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return i + 4;
    }
    buf.iter()
        .rposition(|&b| b == b'\n')
        .map_or(buf.len(), |i| i + 1)
}

/// A received message: `head` in memory, then `tail` when it was spooled.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub head: Vec<u8>,
    pub tail: Option<Spooled>,
    /// It holds a NUL octet (binary content: BDAT BINARYMIME, a literal8).
    pub nul: bool,
}

impl Message {
    pub fn whole(raw: Vec<u8>) -> Message {
        Message {
            nul: raw.contains(&0),
            head: raw,
            tail: None,
        }
    }

    pub fn len(&self) -> usize {
        let tail = self.tail.as_ref().map_or(0, Spooled::len);
        usize::try_from(self.head.len() as u64 + tail).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when part of it is only in the spool file.
    pub fn is_spooled(&self) -> bool {
        self.tail.as_ref().is_some_and(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_message_stays_in_memory_and_a_big_one_is_spooled_unlinked() {
        let dir = tempfile::tempdir().expect("dir");
        let spool_dir = dir.path().join("spool");
        std::fs::create_dir(&spool_dir).expect("mkdir");
        std::fs::write(spool_dir.join("left-by-a-crash"), b"x").expect("write");
        let spool = Arc::new(Spool::open(&spool_dir, 100).expect("open"));
        assert_eq!(std::fs::read_dir(&spool_dir).expect("ls").count(), 0);
        let mode = std::fs::metadata(&spool_dir)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let mut small = spool.writer();
        small.write(b"Subject: s\r\n\r\nhi\r\n");
        let m = small.finish().expect("finish");
        assert!(!m.is_spooled());
        assert_eq!(m.head, b"Subject: s\r\n\r\nhi\r\n");

        let mut big = spool.writer();
        let body = vec![b'x'; 1000];
        big.write(b"Subject: b\r\n\r\n");
        for piece in body.chunks(7) {
            big.write(piece);
        }
        // Nothing is visible in the directory while it is written.
        assert_eq!(std::fs::read_dir(&spool_dir).expect("ls").count(), 0);
        let m = big.finish().expect("finish");
        assert!(m.is_spooled());
        assert_eq!(m.head, b"Subject: b\r\n\r\n");
        let tail = m.tail.as_ref().expect("tail");
        assert_eq!(tail.to_vec().expect("read"), body);
        assert_eq!(m.len(), 1000 + 14);
    }

    #[test]
    fn attaching_to_a_running_servers_spool_leaves_its_files_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let spool_dir = dir.path().join("spool");
        let attached = Spool::attach(&spool_dir, 10).expect("attach");
        let mode = std::fs::metadata(&spool_dir)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(spool_dir.join("servers-file"), b"x").expect("write");
        let again = Arc::new(Spool::attach(&spool_dir, 10).expect("attach"));
        assert!(spool_dir.join("servers-file").exists());
        let mut w = again.writer();
        w.write(b"Subject: s\r\n\r\n0123456789");
        let m = w.finish().expect("finish");
        assert!(m.is_spooled());
        drop(attached);
        assert_eq!(std::fs::read_dir(&spool_dir).expect("ls").count(), 1);
    }

    #[test]
    fn a_full_disk_is_reported_once_at_the_end() {
        let full = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut w = SpoolWriter::spilling_to(full, 10);
        w.write(b"0123456789");
        assert!(w.failed().is_none());
        // The spill's buffered writes reach the device at the latest when
        // the buffer fills or at the end.
        for _ in 0..100 {
            w.write(&[b'y'; 4096]);
        }
        assert_eq!(w.finish().err(), Some(SpoolError::DiskFull));
    }

    #[test]
    fn the_head_ends_after_the_header_or_at_a_line_break() {
        assert_eq!(head_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(head_end(b"A: b\r\nC: d"), 6);
        assert_eq!(head_end(b"no line break"), 13);
    }
}

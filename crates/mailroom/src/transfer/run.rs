//! `mailroom import` and `mailroom export`: moving an account's mail
//! between the store and mbox / Maildir files, through the [`Store`] trait
//! only, with one message in memory at a time (plus a bounded window of
//! appends in flight, so group commit batches their fsyncs).
//!
//! A message bigger than `[store] spool_threshold` is never held whole
//! (issue 19, SPEC 8): it is read a piece at a time (an mbox message line
//! by line, a Maildir file in [`READ_CHUNK`] pieces), its line endings
//! made CRLF and its digest computed on the way, into a spool file under
//! `<data_dir>/spool` (0700, the file 0600 and unlinked as soon as it is
//! made, as the SMTP listener spools: crates/server/src/spool.rs), and
//! the store copies the file in chunks ([`Store::import_spooled`]). The
//! window holds such a message's header and its spool file only.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proto_imap::mime::encode_binary_parts;
use server::spool::{Message, Spool};
use store::{MailboxId, Store, StoreFuture, Uid};

use super::maildir;
use super::mbox::{self, Item, MAX_IMPORT_MESSAGE, MboxReader};

/// Appends in flight at once: enough for group commit to share fsyncs.
pub const IMPORT_WINDOW: usize = 64;
/// Octets of messages in flight at once held in memory, whatever their
/// number.
pub const IMPORT_INFLIGHT_BYTES: usize = 32 * 1024 * 1024;
/// Octets of spooled messages in flight at once: each keeps its spool
/// file (disk, not memory) until the store has copied it, so this bounds
/// the spool's use of the disk during an import.
pub const IMPORT_INFLIGHT_SPOOLED: u64 = 128 * 1024 * 1024;
/// Octets read from a big Maildir file at a time (the spool's own write
/// buffer size).
pub const READ_CHUNK: usize = server::spool::SPOOL_BUFFER;
/// Plain progress lines (not on a terminal) every this many messages.
const PROGRESS_EVERY: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mbox,
    Maildir,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "mbox" => Ok(Format::Mbox),
            "maildir" => Ok(Format::Maildir),
            other => Err(format!("unknown format {other:?} (mbox or maildir)")),
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: u64,
    /// Already imported into that mailbox by an earlier run.
    pub duplicates: u64,
    /// Over [`MAX_IMPORT_MESSAGE`], or unreadable.
    pub skipped: u64,
    pub folders: u64,
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    verb: &'static str,
}

impl Progress {
    pub fn new(verb: &'static str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(verb);
            bar
        });
        Progress { bar, done: 0, verb }
    }

    fn tick(&mut self, folder: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if self.done.is_multiple_of(PROGRESS_EVERY) => {
                eprintln!("mailroom: {} {} messages ({folder})", self.verb, self.done);
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Appends in flight, awaited in order.
struct Window<'a> {
    /// Each with its octets in memory and in a spool file.
    pending: VecDeque<(usize, u64, StoreFuture<'a, Option<Uid>>)>,
    bytes: usize,
    spooled: u64,
    /// Where a spooled message's re-encoded copy goes.
    spool: Arc<Spool>,
}

impl<'a> Window<'a> {
    fn new(spool: &Arc<Spool>) -> Window<'a> {
        Window {
            pending: VecDeque::new(),
            bytes: 0,
            spooled: 0,
            spool: Arc::clone(spool),
        }
    }

    /// Adds an import of `message` (whole, or its header and spooled
    /// rest), then waits for the oldest ones while the window is over
    /// one of its bounds.
    #[allow(clippy::too_many_arguments)]
    async fn push(
        &mut self,
        store: &'a dyn Store,
        mailbox: MailboxId,
        message: Message,
        flags: Vec<String>,
        internal_date: i64,
        digest: [u8; 32],
        report: &mut ImportReport,
    ) -> Result<(), String> {
        let Message { head, tail, nul } = message;
        let tail = tail.filter(|t| !t.is_empty());
        // RFC 3516 4.3: parts holding NUL are stored in base64, as SMTP and
        // APPEND store them (server::binary), a spooled message a chunk at
        // a time into a new spool file. The digest stays the source's, so
        // a rerun still finds the messages it imported.
        let (head, tail) = match (nul, tail) {
            (false, tail) => (head, tail),
            (true, None) => (encode_binary_parts(&head).unwrap_or(head), None),
            (true, Some(tail)) => {
                let writer = self.spool.writer();
                match server::binary::reencode_spooled_async(head.clone(), tail.clone(), writer)
                    .await
                    .map_err(|e| format!("cannot re-encode a binary message: {e:?}"))?
                {
                    Some(m) => (m.head, m.tail.filter(|t| !t.is_empty())),
                    None => (head, Some(tail)),
                }
            }
        };
        let mem = head.len();
        let (disk, f) = match tail {
            Some(tail) => (
                tail.len(),
                store.import_spooled(mailbox, head, tail, flags, internal_date, digest),
            ),
            None => (0, store.import(mailbox, head, flags, internal_date, digest)),
        };
        self.pending.push_back((mem, disk, f));
        self.bytes += mem;
        self.spooled += disk;
        while self.pending.len() >= IMPORT_WINDOW
            || self.bytes > IMPORT_INFLIGHT_BYTES
            || self.spooled > IMPORT_INFLIGHT_SPOOLED
        {
            self.pop(report).await?;
        }
        Ok(())
    }

    async fn pop(&mut self, report: &mut ImportReport) -> Result<(), String> {
        if let Some((mem, disk, f)) = self.pending.pop_front() {
            self.bytes -= mem;
            self.spooled -= disk;
            match f.await.map_err(|e| e.to_string())? {
                Some(_) => report.imported += 1,
                None => report.duplicates += 1,
            }
        }
        Ok(())
    }

    async fn drain(&mut self, report: &mut ImportReport) -> Result<(), String> {
        while !self.pending.is_empty() {
            self.pop(report).await?;
        }
        Ok(())
    }
}

fn digest(raw: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One message on its way in: hashed and written to a spool writer as
/// its octets come, so its digest is the one [`digest`] gives of the
/// whole and it stays in memory only up to the spool threshold.
struct Incoming {
    writer: server::spool::SpoolWriter,
    hash: ring::digest::Context,
}

impl Incoming {
    fn new(spool: &Arc<Spool>) -> Incoming {
        Incoming {
            writer: spool.writer(),
            hash: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.writer.write(bytes);
    }

    /// The message (in memory, or its header and spool file) and its
    /// digest. A spool that cannot take it (disk full) ends the import:
    /// a rerun skips what is in.
    fn finish(self) -> Result<(Message, [u8; 32]), String> {
        let d = self.hash.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        let message = self
            .writer
            .finish()
            .map_err(|e| format!("cannot spool a message: {e:?}"))?;
        Ok((message, out))
    }
}

/// The mailbox `name` of `account`, created when missing.
async fn target(store: &dyn Store, account: &str, name: &str) -> Result<MailboxId, String> {
    if let Some(m) = store
        .mailbox(account.to_string(), name.to_string())
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(m.id);
    }
    store
        .create_mailbox(account.to_string(), name.to_string(), None)
        .await
        .map(|m| m.id)
        .map_err(|e| format!("cannot create {name}: {e}"))
}

/// Where a Maildir folder goes: under `prefix` when one is given.
fn under(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        None => name.to_string(),
        Some(p) if name.eq_ignore_ascii_case("INBOX") => p.to_string(),
        Some(p) => format!("{p}/{name}"),
    }
}

/// Imports `path` (an mbox file, or a Maildir++ root) into `account`.
pub async fn import(
    store: &dyn Store,
    account: &str,
    path: &Path,
    format: Option<Format>,
    folder: Option<&str>,
    spool: &Arc<Spool>,
) -> Result<ImportReport, String> {
    let format = format.unwrap_or(if path.is_dir() {
        Format::Maildir
    } else {
        Format::Mbox
    });
    let mut report = ImportReport::default();
    match format {
        Format::Mbox => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let name = folder.unwrap_or("INBOX");
            let mailbox = target(store, account, name).await?;
            report.folders = 1;
            let mut progress = Progress::new("importing", None);
            let mut reader = MboxReader::new(BufReader::with_capacity(READ_CHUNK, file));
            let mut window = Window::new(spool);
            let now = unix_now();
            loop {
                // Each message streams through the spool writer: in
                // memory while small, to a spool file past the threshold.
                let mut incoming = Incoming::new(spool);
                let item = reader
                    .next_item(&mut |b: &[u8]| incoming.write(b))
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                match item {
                    None => break,
                    Some(Item::TooLarge(from)) => {
                        // Dropping the writer drops its (unlinked) file.
                        eprintln!(
                            "mailroom: skipped a message over {MAX_IMPORT_MESSAGE} octets ({from})"
                        );
                        report.skipped += 1;
                    }
                    Some(Item::Message(m)) => {
                        let (message, d) = incoming.finish()?;
                        let date = m.date.unwrap_or(now);
                        window
                            .push(store, mailbox, message, m.flags, date, d, &mut report)
                            .await?;
                        progress.tick(name);
                    }
                }
            }
            window.drain(&mut report).await?;
            progress.finish();
        }
        Format::Maildir => {
            let folders = maildir::folders(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if folders.is_empty() {
                return Err(format!(
                    "{} holds no Maildir (no cur/ or new/)",
                    path.display()
                ));
            }
            // Counted first for the progress bar; each folder's listing is
            // then read (and sorted into arrival order) only while it is
            // imported.
            let total: u64 = folders.iter().map(|f| maildir::count(&f.path)).sum();
            let mut progress = Progress::new("importing", Some(total));
            for f in folders {
                let entries = maildir::entries(&f.path)
                    .map_err(|e| format!("cannot read {}: {e}", f.path.display()))?;
                let name = under(folder, &f.name);
                let mailbox = target(store, account, &name).await?;
                report.folders += 1;
                let mut window = Window::new(spool);
                for e in entries {
                    progress.tick(&name);
                    let Some((message, d)) = read_bounded(&e.path, spool)? else {
                        report.skipped += 1;
                        continue;
                    };
                    window
                        .push(
                            store,
                            mailbox,
                            message,
                            e.flags,
                            e.internal_date,
                            d,
                            &mut report,
                        )
                        .await?;
                }
                window.drain(&mut report).await?;
            }
            progress.finish();
        }
    }
    Ok(report)
}

/// A message file with its line endings made CRLF, and its digest;
/// `None` when it is over the import bound or unreadable (reported on
/// stderr). One up to the spool threshold is read whole, as before issue
/// 19; a bigger one is read in [`READ_CHUNK`] pieces into a spool file.
/// Only a spool that cannot take it is an error.
fn read_bounded(path: &Path, spool: &Arc<Spool>) -> Result<Option<(Message, [u8; 32])>, String> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    if len > MAX_IMPORT_MESSAGE as u64 {
        eprintln!(
            "mailroom: skipped {} (over {MAX_IMPORT_MESSAGE} octets)",
            path.display()
        );
        return Ok(None);
    }
    let skipped = |e: std::io::Error| {
        eprintln!("mailroom: skipped {}: {e}", path.display());
        Ok(None)
    };
    if len <= spool.threshold() as u64 {
        return match std::fs::read(path) {
            Ok(raw) => {
                let raw = proto_smtp::canonicalize_line_endings(&raw);
                let d = digest(&raw);
                Ok(Some((Message::whole(raw), d)))
            }
            Err(e) => skipped(e),
        };
    }
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return skipped(e),
    };
    let mut incoming = Incoming::new(spool);
    let mut crlf = proto_smtp::CrlfNormalizer::new();
    let mut buf = vec![0; READ_CHUNK];
    let mut out = Vec::with_capacity(READ_CHUNK + READ_CHUNK / 8);
    // Bounded as the whole read was: by the size stat gave, a file that
    // grows meanwhile is cut there.
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return skipped(e),
        };
        left -= n as u64;
        out.clear();
        crlf.push(buf.get(..n).unwrap_or_default(), &mut out);
        incoming.write(&out);
    }
    out.clear();
    crlf.finish(&mut out);
    incoming.write(&out);
    incoming.finish().map(Some)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub messages: u64,
    pub folders: u64,
    /// Keywords a Maildir folder could not carry (over 26).
    pub dropped_keywords: usize,
}

/// The mbox file of folder `name` under `dir`: `Archive/2024` ->
/// `dir/Archive/2024.mbox` (a folder and its children never collide).
fn mbox_path(dir: &Path, name: &str) -> PathBuf {
    let mut p = dir.to_path_buf();
    let parts: Vec<&str> = name.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        // Names come from the store; no component may climb out.
        let safe = match *part {
            "" | "." | ".." => "_",
            other => other,
        };
        if i + 1 == parts.len() {
            p.push(format!("{safe}.mbox"));
        } else {
            p.push(safe);
        }
    }
    p
}

/// Exports every mailbox of `account` into `dir`.
pub async fn export(
    store: &dyn Store,
    account: &str,
    dir: &Path,
    format: Format,
) -> Result<ExportReport, String> {
    let mailboxes = store
        .mailboxes(account.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let total: u64 = mailboxes.iter().map(|m| u64::from(m.messages)).sum();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut report = ExportReport::default();
    let mut progress = Progress::new("exporting", Some(total));
    let mut writer = maildir::Writer::new(dir);
    for mb in mailboxes {
        let metas = store.messages(mb.id).await.map_err(|e| e.to_string())?;
        report.folders += 1;
        let io = |e: std::io::Error| format!("writing {}: {e}", mb.name);
        match format {
            Format::Maildir => {
                writer.folder(&mb.name).map_err(io)?;
                for m in metas {
                    let raw = match store.read_body(m.body).await {
                        Ok(raw) => raw,
                        // Expunged meanwhile by a running server.
                        Err(store::StoreError::NotFound(_)) => continue,
                        Err(e) => return Err(e.to_string()),
                    };
                    writer
                        .message(&raw, &m.flags, m.internal_date)
                        .map_err(io)?;
                    report.messages += 1;
                    progress.tick(&mb.name);
                }
                writer.finish_folder().map_err(io)?;
            }
            Format::Mbox => {
                let path = mbox_path(dir, &mb.name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let file = std::fs::File::create(&path).map_err(io)?;
                let mut out = BufWriter::new(file);
                for m in metas {
                    let raw = match store.read_body(m.body).await {
                        Ok(raw) => raw,
                        Err(store::StoreError::NotFound(_)) => continue,
                        Err(e) => return Err(e.to_string()),
                    };
                    let sender = mbox::return_path(&raw);
                    mbox::write_message(&mut out, &sender, m.internal_date, &raw).map_err(io)?;
                    report.messages += 1;
                    progress.tick(&mb.name);
                }
                let file = out.into_inner().map_err(|e| io(e.into_error()))?;
                file.sync_all().map_err(io)?;
            }
        }
    }
    report.dropped_keywords = writer.dropped_keywords;
    if format == Format::Maildir {
        writer
            .sync()
            .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    }
    progress.finish();
    let _ = std::io::stderr().flush();
    Ok(report)
}

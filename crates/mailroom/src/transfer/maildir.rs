//! Maildir and Maildir++ as Dovecot writes them: `cur/`, `new/`, `tmp/`
//! per folder, sub-folders as `.Folder.Sub` next to INBOX's, flags in the
//! file name's `:2,` info, keywords as the letters `a`..`z` indexed by the
//! folder's `dovecot-keywords` file.
//!
//! Folder names on disk are modified UTF-7 (RFC 3501 5.1.3, Dovecot's
//! default); a "." inside a name component, a "/" and the escape character
//! itself are written `\NN` (two lower-case hex digits), as Dovecot's
//! listescape does, since "." separates the hierarchy on disk.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The mailroom hierarchy delimiter (IMAP's, crates/server/src/imap).
const DELIMITER: char = '/';
/// Dovecot's listescape character.
const ESCAPE: char = '\\';
/// Keywords a Maildir file name can carry (the letters a..z).
pub const MAX_KEYWORDS: usize = 26;
/// The file naming a folder's keywords.
const KEYWORDS_FILE: &str = "dovecot-keywords";

/// One folder of a Maildir++ tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// "INBOX", or the mailroom name ("Archive/2024").
    pub name: String,
    pub path: PathBuf,
}

/// One message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub flags: Vec<String>,
    /// INTERNALDATE: the file's mtime, else the name's leading timestamp.
    pub internal_date: i64,
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// The folders under `root` (a Maildir++ root: INBOX's own `cur`/`new`,
/// sub-folders as `.Name` directories), INBOX first, then by name.
pub fn folders(root: &Path) -> io::Result<Vec<Folder>> {
    let mut out = Vec::new();
    if is_maildir(root) {
        out.push(Folder {
            name: "INBOX".to_string(),
            path: root.to_path_buf(),
        });
    }
    let mut subs = Vec::new();
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let file = e.file_name();
        let Some(name) = file.to_str() else { continue };
        let Some(stored) = name.strip_prefix('.') else {
            continue;
        };
        if stored.is_empty() || stored == "." || !is_maildir(&e.path()) {
            continue;
        }
        if let Some(name) = decode_folder(stored) {
            subs.push(Folder {
                name,
                path: e.path(),
            });
        }
    }
    subs.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(subs);
    Ok(out)
}

/// `Archive.2024` -> `Archive/2024`; components unescaped, then decoded
/// from modified UTF-7. None for a name that does not decode.
pub fn decode_folder(stored: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in stored.split('.') {
        let unescaped = unescape(part)?;
        parts.push(proto_imap::utf7::decode(unescaped.as_bytes())?);
    }
    let name = parts.join(&DELIMITER.to_string());
    // Dovecot's INBOX children live under `.INBOX.x`; INBOX itself is the
    // root, never a `.INBOX` folder of its own.
    Some(name)
}

/// `Archive/2024` -> `.Archive.2024` (the directory name under the root).
pub fn encode_folder(name: &str) -> String {
    let parts: Vec<String> = name
        .split(DELIMITER)
        .map(|p| escape(&proto_imap::utf7::encode(p)))
        .collect();
    format!(".{}", parts.join("."))
}

fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for (i, c) in part.chars().enumerate() {
        if c == '.' || c == ESCAPE || c == '/' || (i == 0 && c == '~') {
            out.push_str(&format!("{ESCAPE}{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        if c == ESCAPE {
            let hex: String = chars.by_ref().take(2).collect();
            let b = u8::from_str_radix(&hex, 16).ok()?;
            out.push(char::from(b));
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A folder's keyword names by index (`dovecot-keywords`: "N name" lines).
pub fn read_keywords(folder: &Path) -> BTreeMap<usize, String> {
    let text = std::fs::read_to_string(folder.join(KEYWORDS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            let n: usize = n.parse().ok()?;
            let name = name.trim();
            (n < MAX_KEYWORDS && !name.is_empty()).then(|| (n, name.to_string()))
        })
        .collect()
}

/// Flags from a file name's info (`unique:2,DFRST` plus keyword letters).
pub fn flags_of(file_name: &str, keywords: &BTreeMap<usize, String>) -> Vec<String> {
    let Some((_, info)) = file_name.rsplit_once(":2,") else {
        return Vec::new();
    };
    let mut flags = Vec::new();
    for c in info.chars() {
        let flag = match c {
            'D' => Some("\\Draft".to_string()),
            'F' => Some("\\Flagged".to_string()),
            'R' => Some("\\Answered".to_string()),
            'S' => Some("\\Seen".to_string()),
            'T' => Some("\\Deleted".to_string()),
            'a'..='z' => keywords.get(&(c as usize - 'a' as usize)).cloned(),
            // 'P' (passed) has no IMAP flag; Dovecot ignores it too.
            _ => None,
        };
        if let Some(f) = flag
            && !flags.contains(&f)
        {
            flags.push(f);
        }
    }
    flags
}

/// How many message files a folder holds (for a progress bar).
pub fn count(folder: &Path) -> u64 {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(folder.join(sub)).ok())
        .flat_map(|list| list.filter_map(|e| e.ok()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count() as u64
}

/// The message files of one folder (`new/` then `cur/`), by name: Maildir
/// names start with the delivery time, so this is arrival order.
pub fn entries(folder: &Path) -> io::Result<Vec<Entry>> {
    let keywords = read_keywords(folder);
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let dir = folder.join(sub);
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in list {
            let e = e?;
            if !e.file_type()?.is_file() {
                continue;
            }
            let file = e.file_name();
            let name = file.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let mtime = e
                .metadata()?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            let from_name = name.split('.').next().and_then(|t| t.parse::<i64>().ok());
            out.push(Entry {
                path: e.path(),
                flags: flags_of(&name, &keywords),
                internal_date: mtime.or(from_name).unwrap_or(0),
            });
        }
    }
    out.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    Ok(out)
}

/// Writes messages into a Maildir++ tree: one folder at a time, keywords
/// collected and written to the folder's `dovecot-keywords` at the end.
pub struct Writer {
    root: PathBuf,
    host: String,
    pid: u32,
    counter: u64,
    dir: PathBuf,
    keywords: Vec<String>,
    /// Keywords beyond [`MAX_KEYWORDS`] in this folder, not written.
    pub dropped_keywords: usize,
}

impl Writer {
    pub fn new(root: &Path) -> Writer {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(['/', ':', '.'], "_"))
            .unwrap_or_else(|_| "mailroom".to_string());
        Writer {
            root: root.to_path_buf(),
            host,
            pid: std::process::id(),
            counter: 0,
            dir: root.to_path_buf(),
            keywords: Vec::new(),
            dropped_keywords: 0,
        }
    }

    /// Starts folder `name` ("INBOX" is the root).
    pub fn folder(&mut self, name: &str) -> io::Result<()> {
        self.finish_folder()?;
        self.dir = if name.eq_ignore_ascii_case("INBOX") {
            self.root.clone()
        } else {
            self.root.join(encode_folder(name))
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        self.keywords = read_keywords(&self.dir).into_values().collect();
        Ok(())
    }

    /// Writes one message (CRLF as stored; the file gets LF, as Dovecot
    /// and mutt write) with its flags, its mtime the INTERNALDATE.
    pub fn message(
        &mut self,
        raw: &[u8],
        flags: &[String],
        internal_date: i64,
    ) -> io::Result<PathBuf> {
        let mut info = String::new();
        let mut letters = Vec::new();
        for f in flags {
            match f.as_str() {
                "\\Draft" => info.push('D'),
                "\\Flagged" => info.push('F'),
                "\\Answered" => info.push('R'),
                "\\Seen" => info.push('S'),
                "\\Deleted" => info.push('T'),
                "\\Recent" => {}
                k => {
                    let i = match self.keywords.iter().position(|x| x == k) {
                        Some(i) => i,
                        None if self.keywords.len() < MAX_KEYWORDS => {
                            self.keywords.push(k.to_string());
                            self.keywords.len() - 1
                        }
                        None => {
                            self.dropped_keywords += 1;
                            continue;
                        }
                    };
                    letters.push(char::from(b'a' + i as u8));
                }
            }
        }
        let mut chars: Vec<char> = info.chars().chain(letters).collect();
        chars.sort_unstable();
        chars.dedup();
        let info: String = chars.into_iter().collect();
        let lf = crlf_to_lf(raw);
        self.counter += 1;
        let unique = format!(
            "{}.M{}P{}Q{}.{}",
            internal_date.max(0),
            self.counter,
            self.pid,
            self.counter,
            self.host
        );
        let name = format!("{unique},S={}:2,{info}", lf.len());
        // Maildir delivery: write in tmp/, then rename into cur/, so a
        // reader never sees half a file. No fsync per file (an export is
        // rerun after a crash); [`Writer::sync`] flushes everything once.
        let tmp = self.dir.join("tmp").join(&unique);
        let dest = self.dir.join("cur").join(name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&lf)?;
            let when =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(internal_date.max(0) as u64);
            f.set_modified(when)?;
        }
        std::fs::rename(&tmp, &dest)?;
        Ok(dest)
    }

    /// Flushes the whole tree to disk (one syncfs, not one fsync per
    /// message: 100 000 fsyncs took minutes).
    pub fn sync(&self) -> io::Result<()> {
        let root = std::fs::File::open(&self.root)?;
        rustix::fs::syncfs(&root)?;
        Ok(())
    }

    /// Writes the current folder's `dovecot-keywords`.
    pub fn finish_folder(&mut self) -> io::Result<()> {
        if self.keywords.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (i, k) in self.keywords.iter().enumerate() {
            text.push_str(&format!("{i} {k}\n"));
        }
        std::fs::write(self.dir.join(KEYWORDS_FILE), text)?;
        self.keywords.clear();
        Ok(())
    }
}

/// CRLF -> LF (a lone CR stays).
pub fn crlf_to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_escape_dots_and_use_modified_utf7() {
        assert_eq!(encode_folder("Archive/2024"), ".Archive.2024");
        assert_eq!(encode_folder("v1.2/notes"), ".v1\\2e2.notes");
        assert_eq!(encode_folder("Entwürfe"), ".Entw&APw-rfe");
        assert_eq!(encode_folder("~home"), ".\\7ehome");
        for name in ["Archive/2024", "v1.2/notes", "Entwürfe", "~home", "a\\b"] {
            let stored = encode_folder(name);
            assert_eq!(
                decode_folder(&stored[1..]).as_deref(),
                Some(name),
                "{stored}"
            );
        }
        assert_eq!(decode_folder("bad\\zz"), None);
    }

    #[test]
    fn info_letters_are_flags_and_keywords() {
        let mut kw = BTreeMap::new();
        kw.insert(0, "$Forwarded".to_string());
        kw.insert(2, "Junk".to_string());
        assert_eq!(
            flags_of("1700000000.M1P2.host,S=10:2,FPRSac", &kw),
            ["\\Flagged", "\\Answered", "\\Seen", "$Forwarded", "Junk"]
        );
        assert!(flags_of("1700000000.M1P2.host", &kw).is_empty());
        // An index without a name in dovecot-keywords is no keyword.
        assert_eq!(flags_of("x:2,Sb", &kw), ["\\Seen"]);
    }

    #[test]
    fn a_written_tree_reads_back_with_flags_keywords_folders_and_dates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = Writer::new(dir.path());
        w.folder("INBOX").expect("inbox");
        w.message(
            b"Subject: a\r\n\r\nx\r\n",
            &["\\Seen".into(), "Work".into()],
            1_700_000_000,
        )
        .expect("write");
        w.folder("Archive/v1.0").expect("folder");
        w.message(
            b"Subject: b\r\n\r\ny\r\n",
            &["\\Flagged".into(), "\\Deleted".into()],
            1_600_000_000,
        )
        .expect("write");
        w.finish_folder().expect("finish");
        let f = folders(dir.path()).expect("folders");
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["INBOX", "Archive/v1.0"]);
        let inbox = entries(&f[0].path).expect("entries");
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].flags, ["\\Seen", "Work"]);
        assert_eq!(inbox[0].internal_date, 1_700_000_000);
        assert_eq!(
            std::fs::read(&inbox[0].path).expect("read"),
            b"Subject: a\n\nx\n"
        );
        let archive = entries(&f[1].path).expect("entries");
        assert_eq!(archive[0].flags, ["\\Flagged", "\\Deleted"]);
        assert_eq!(archive[0].internal_date, 1_600_000_000);
    }

    #[test]
    fn more_than_26_keywords_are_counted_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = Writer::new(dir.path());
        w.folder("INBOX").expect("inbox");
        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        w.message(b"x\r\n", &many, 0).expect("write");
        assert_eq!(w.dropped_keywords, 4);
        w.finish_folder().expect("finish");
        assert_eq!(read_keywords(dir.path()).len(), MAX_KEYWORDS);
    }
}

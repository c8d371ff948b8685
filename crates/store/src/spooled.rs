//! Bodies too large to hold in memory (issue 19): the part of a message
//! that stayed in its spool file while it arrived, handed to the store as
//! a file region and copied in [`BODY_CHUNK`] pieces, so that a 20 MiB
//! message costs a chunk of memory, not 20 MiB, on its way in; and the
//! chunked reads ([`crate::Store::read_body_range`]) that take it out.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::StoreError;

/// Bytes per piece when a body is copied between a spool file, the store
/// and a socket: what one transfer holds in memory at a time. 256 KiB
/// keeps the per-chunk overhead (a syscall, a SQL statement, a PostgreSQL
/// row) small against the copy itself.
pub const BODY_CHUNK: usize = 256 * 1024;

/// A region of an open (usually already unlinked) spool file: what
/// follows a message's in-memory head. Clones share the file, so a
/// backend that retries a transaction reads the region again.
#[derive(Debug, Clone)]
pub struct Spooled {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl Spooled {
    /// `len` octets of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64) -> Spooled {
        Spooled {
            file: Arc::new(file),
            offset,
            len,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region from `from` (relative) to its end; empty past it.
    pub fn skip(&self, from: u64) -> Spooled {
        let from = from.min(self.len);
        Spooled {
            file: Arc::clone(&self.file),
            offset: self.offset + from,
            len: self.len - from,
        }
    }

    /// Reads up to `buf.len()` octets at `pos` (relative), fewer only at
    /// the region's end.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        let left = self.len.saturating_sub(pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let mut done = 0;
        while done < want {
            let Some(dst) = buf.get_mut(done..want) else {
                break;
            };
            let n = self
                .file
                .read_at(dst, self.offset + pos + done as u64)
                .map_err(|e| StoreError::Io(format!("spool file: {e}")))?;
            if n == 0 {
                return Err(StoreError::Io("spool file shorter than its message".into()));
            }
            done += n;
        }
        Ok(done)
    }

    /// Calls `f` with the region's octets in order, [`BODY_CHUNK`] at a
    /// time (the last piece shorter).
    pub fn for_each_chunk(
        &self,
        mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut buf = vec![0; BODY_CHUNK.min(usize::try_from(self.len).unwrap_or(BODY_CHUNK))];
        let mut pos = 0;
        while pos < self.len {
            let n = self.read_at(pos, &mut buf)?;
            f(buf.get(..n).unwrap_or_default())?;
            pos += n as u64;
        }
        Ok(())
    }

    /// The whole region in memory: for backends without chunked writes
    /// (the trait's defaults) and tests.
    pub fn to_vec(&self) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.for_each_chunk(|c| {
            out.extend_from_slice(c);
            Ok(())
        })?;
        Ok(out)
    }
}

/// The spooled ends of one delivery's two copies (issue 19): the local
/// copy is its `local_raw` then `local`, the relayed copy its `raw` then
/// `relayed`. Usually the same tail ends both; a message with binary parts
/// is stored locally as IMAP shows it (RFC 3516 4.3: those parts in
/// base64) and relayed as it came, so its local copy has a tail of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tails<'a> {
    pub local: Option<&'a Spooled>,
    pub relayed: Option<&'a Spooled>,
}

impl<'a> Tails<'a> {
    /// One tail for both copies.
    pub fn both(tail: Option<&'a Spooled>) -> Tails<'a> {
        Tails {
            local: tail,
            relayed: tail,
        }
    }
}

/// A body made of an in-memory head and an optional spooled tail, read in
/// order: what the backends' chunked writes consume.
#[derive(Debug, Clone, Copy)]
pub struct BodyParts<'a> {
    pub head: &'a [u8],
    pub tail: Option<&'a Spooled>,
}

impl<'a> BodyParts<'a> {
    pub fn whole(head: &'a [u8]) -> BodyParts<'a> {
        BodyParts { head, tail: None }
    }

    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.tail.map_or(0, Spooled::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` octets at `pos`, head then tail; fewer only
    /// at the end.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        let head_len = self.head.len() as u64;
        let mut done = 0;
        if pos < head_len {
            let from = usize::try_from(pos).unwrap_or(usize::MAX);
            let src = self.head.get(from..).unwrap_or_default();
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            done = n;
        }
        if let (Some(tail), Some(rest)) = (self.tail, buf.get_mut(done..))
            && !rest.is_empty()
        {
            let at = (pos + done as u64).saturating_sub(head_len);
            done += tail.read_at(at, rest)?;
        }
        Ok(done)
    }

    /// Calls `f` with pieces of exactly [`BODY_CHUNK`] octets (the last
    /// one shorter, and one empty piece for an empty body), head and tail
    /// joined: the PostgreSQL backend's rows are cut at these offsets.
    pub fn for_each_chunk(
        &self,
        mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.is_empty() {
            return f(&[]);
        }
        let mut buf: Vec<u8> = Vec::with_capacity(BODY_CHUNK);
        for piece in self.head.chunks(BODY_CHUNK) {
            fill(&mut buf, piece, &mut f)?;
        }
        if let Some(tail) = self.tail {
            tail.for_each_chunk(|piece| fill(&mut buf, piece, &mut f))?;
        }
        if !buf.is_empty() {
            f(&buf)?;
        }
        Ok(())
    }

    /// Two bodies are the same octets (a relayed copy identical to the
    /// local one shares its body): equal heads and the same tail region.
    pub fn same_as(&self, other: &BodyParts<'_>) -> bool {
        self.head == other.head
            && match (self.tail, other.tail) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    Arc::ptr_eq(&a.file, &b.file) && a.offset == b.offset && a.len == b.len
                }
                _ => false,
            }
    }
}

/// Adds `piece` to `buf`, handing on every full chunk.
fn fill(
    buf: &mut Vec<u8>,
    mut piece: &[u8],
    f: &mut impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    while !piece.is_empty() {
        let room = BODY_CHUNK - buf.len();
        let (now, rest) = piece.split_at(room.min(piece.len()));
        buf.extend_from_slice(now);
        piece = rest;
        if buf.len() == BODY_CHUNK {
            f(buf)?;
            buf.clear();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn spooled(data: &[u8]) -> Spooled {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(b"junk").expect("write");
        f.write_all(data).expect("write");
        Spooled::new(f, 4, data.len() as u64)
    }

    #[test]
    fn parts_are_cut_at_fixed_chunk_offsets_across_head_and_tail() {
        let head = vec![1u8; BODY_CHUNK / 2 + 3];
        let tail_data: Vec<u8> = (0..BODY_CHUNK * 2).map(|i| (i % 251) as u8).collect();
        let tail = spooled(&tail_data);
        let parts = BodyParts {
            head: &head,
            tail: Some(&tail),
        };
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        parts
            .for_each_chunk(|c| {
                sizes.push(c.len());
                all.extend_from_slice(c);
                Ok(())
            })
            .expect("chunks");
        assert_eq!(sizes, vec![BODY_CHUNK, BODY_CHUNK, BODY_CHUNK / 2 + 3]);
        let mut want = head.clone();
        want.extend_from_slice(&tail_data);
        assert_eq!(all, want);
        assert_eq!(parts.len(), want.len() as u64);
        let mut piece = vec![0; 10];
        let at = head.len() as u64 - 4;
        assert_eq!(parts.read_at(at, &mut piece).expect("read"), 10);
        assert_eq!(piece, want[at as usize..at as usize + 10]);
        let end = want.len() as u64 - 3;
        assert_eq!(parts.read_at(end, &mut piece).expect("read"), 3);
    }

    #[test]
    fn an_empty_body_is_one_empty_chunk_and_a_region_skips() {
        let mut n = 0;
        BodyParts::whole(b"")
            .for_each_chunk(|c| {
                assert!(c.is_empty());
                n += 1;
                Ok(())
            })
            .expect("chunks");
        assert_eq!(n, 1);
        let s = spooled(b"hello world");
        assert_eq!(s.skip(6).to_vec().expect("read"), b"world");
        assert!(s.skip(100).is_empty());
    }
}

//! The octets of an outbound message (issue 19): small ones whole in
//! memory, big ones as our DKIM-Signature fields followed by the body in
//! the store, read [`store::BODY_CHUNK`] at a time while the client writes
//! DATA or BDAT, so that relaying a 20 MiB message costs a chunk of
//! memory, not its size.
//!
//! A stored body is read twice: a first pass ([`Content::from_store`])
//! learns what the client must declare before the first octet goes out
//! (SIZE, RFC 1870; BODY=8BITMIME or BINARYMIME, RFC 6152 and RFC 3030)
//! and computes the DKIM body hash and signatures (RFC 6376 5: the
//! signature fields precede the message, so they must be known before it
//! is sent); the second pass ([`Pieces`]) sends. Bodies never change once
//! stored, so both passes see the same octets; a body shorter on the
//! second pass than on the first is an error that breaks the connection
//! mid-message, which the server then discards (RFC 5321 4.1.1.4).

use std::sync::Arc;

use store::{BODY_CHUNK, BodyId, Store, StoreError};

/// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
const MAX_TEXT_LINE: usize = 1000;

/// Messages whose first read from the store is shorter than this are held
/// whole and signed as before; longer ones are streamed.
pub const STREAM_ABOVE: usize = BODY_CHUNK;

/// The most of a stored message's header section held in memory to find
/// its From domain and start the DKIM signatures (RFC 5322 sets no limit;
/// this is ours, like the inbound spool's `MAX_SPOOLED_HEAD`). A message
/// whose header section is longer is sent unsigned.
pub const MAX_SIGNED_HEAD: usize = 256 * 1024;

/// What the client must know of a message before sending it, learnt in
/// one pass over its octets in any pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    pub len: u64,
    /// An octet above 127 (RFC 6152: BODY=8BITMIME).
    pub eight_bit: bool,
    binary: bool,
    line: usize,
    prev: u8,
}

impl Scan {
    pub fn of(raw: &[u8]) -> Scan {
        let mut s = Scan::default();
        s.write(raw);
        s
    }

    pub fn write(&mut self, piece: &[u8]) {
        self.len += piece.len() as u64;
        for &b in piece {
            if b >= 0x80 {
                self.eight_bit = true;
            }
            if !self.binary {
                self.binary = self.breaks_text(b);
            }
            self.prev = b;
        }
    }

    /// Whether `b`, after what came before, makes the content binary.
    fn breaks_text(&mut self, b: u8) -> bool {
        // A CR must be followed by LF, an LF preceded by CR.
        if self.prev == b'\r' && b != b'\n' {
            return true;
        }
        match b {
            0 => true,
            b'\n' => {
                self.line = 0;
                self.prev != b'\r'
            }
            b'\r' => false,
            _ => {
                self.line += 1;
                // The line's octets plus its CRLF.
                self.line + 2 > MAX_TEXT_LINE
            }
        }
    }

    /// Whether the message can only travel as BODY=BINARYMIME (RFC 3030
    /// 3): it holds a NUL, a CR or LF that is not part of a CRLF pair, or
    /// a line longer than SMTP's text limit. 8-bit text is not binary
    /// (RFC 6152).
    pub fn binary(&self) -> bool {
        self.binary || self.prev == b'\r'
    }

    /// Whether the last line is closed by CRLF (else DATA adds one before
    /// the final dot, RFC 5321 4.1.1.4). Meaningful for text content,
    /// where every LF follows a CR.
    pub fn ends_with_crlf(&self) -> bool {
        self.len > 0 && self.prev == b'\n'
    }
}

/// A message's octets.
#[derive(Clone)]
pub enum Content {
    /// Whole in memory.
    Whole(Arc<Vec<u8>>),
    /// `prefix` then a body in the store.
    Stored(Arc<Stored>),
}

/// A big message: our header fields (the DKIM signatures) then the
/// stored body, with what the first pass learnt of the whole.
pub struct Stored {
    pub prefix: Vec<u8>,
    pub store: Arc<dyn Store>,
    pub body: BodyId,
    pub body_len: u64,
    /// Of `prefix` and the body together.
    pub scan: Scan,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Whole(raw) => write!(f, "Whole({} octets)", raw.len()),
            Content::Stored(s) => write!(f, "Stored({:?}, {} octets)", s.body, s.scan.len),
        }
    }
}

impl Content {
    pub fn whole(raw: Vec<u8>) -> Content {
        Content::Whole(Arc::new(raw))
    }

    /// The message held whole, for a report on it; None for a stored one
    /// (the report reads what it needs itself).
    pub fn whole_bytes(&self) -> Option<Arc<Vec<u8>>> {
        match self {
            Content::Whole(raw) => Some(Arc::clone(raw)),
            Content::Stored(_) => None,
        }
    }

    pub fn scan(&self) -> Scan {
        match self {
            Content::Whole(raw) => Scan::of(raw),
            Content::Stored(s) => s.scan,
        }
    }

    /// A reader of the octets in order, at most [`BODY_CHUNK`] at a time.
    pub fn pieces(&self) -> Pieces<'_> {
        Pieces {
            content: self,
            pos: 0,
            prefix_sent: false,
            buf: Vec::new(),
        }
    }

    /// The content of stored `body`, signed by `signer` when its From
    /// domain has keys: whole when it is small, else the first pass over
    /// it (see the module comment).
    pub async fn from_store(
        store: &Arc<dyn Store>,
        body: BodyId,
        signer: Option<&crate::dkim::Signer>,
    ) -> Result<Content, StoreError> {
        let first = store
            .read_body_range_into(body, 0, STREAM_ABOVE, Vec::new())
            .await?;
        if first.len() < STREAM_ABOVE {
            return Ok(Content::whole(match signer {
                Some(s) => s.sign(first),
                None => first,
            }));
        }
        let mut scan = Scan::default();
        // The header section, until it is complete (or too long to sign).
        let mut head: Option<Vec<u8>> = Some(Vec::new());
        let keys = signer.map(crate::dkim::Signer::keys);
        let mut streams: Option<crate::dkim::SigningStreams<'_>> = None;
        let mut buf = first;
        let mut pos = 0u64;
        loop {
            let got = buf.len();
            scan.write(&buf);
            if let Some(h) = head.as_mut() {
                h.extend_from_slice(&buf);
                if let Some(end) = header_end(h) {
                    if let Some(keys) = &keys {
                        streams = keys.streams_for(h.get(..end).unwrap_or_default());
                    }
                    if let Some(s) = streams.as_mut() {
                        s.write(h);
                    }
                    head = None;
                } else if h.len() > MAX_SIGNED_HEAD {
                    tracing::info!(?body, "outbound: header section too long to sign");
                    head = None;
                }
            } else if let Some(s) = streams.as_mut() {
                s.write(&buf);
            }
            pos += got as u64;
            if got < BODY_CHUNK {
                break;
            }
            buf = store
                .read_body_range_into(body, pos, BODY_CHUNK, buf)
                .await?;
            if buf.is_empty() {
                break;
            }
        }
        if let (Some(h), Some(keys)) = (&head, &keys) {
            // No blank line at all: the whole message is a header
            // section, as mail-auth's signer treats it.
            streams = keys.streams_for(h);
            if let Some(s) = streams.as_mut() {
                s.write(h);
            }
        }
        let prefix = streams.map(|s| s.finish()).unwrap_or_default();
        // The prefix is our own fields, ASCII lines each ending in CRLF,
        // after which a scan is in its initial state: the body's scan is
        // the whole message's but for the length.
        let mut whole = scan;
        whole.len += prefix.len() as u64;
        whole.binary |= Scan::of(&prefix).binary();
        Ok(Content::Stored(Arc::new(Stored {
            prefix,
            store: Arc::clone(store),
            body,
            body_len: pos,
            scan: whole,
        })))
    }
}

/// Where the header section of `raw` ends (after its empty line).
fn header_end(raw: &[u8]) -> Option<usize> {
    if raw.starts_with(b"\r\n") {
        return Some(2);
    }
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The octets of a [`Content`] in order.
pub struct Pieces<'a> {
    content: &'a Content,
    pos: u64,
    prefix_sent: bool,
    buf: Vec<u8>,
}

impl Pieces<'_> {
    /// The next piece; None at the end. A stored body that ends before
    /// the length its first pass found is an error.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, StoreError> {
        match self.content {
            Content::Whole(raw) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
                let Some(rest) = raw.get(start..).filter(|r| !r.is_empty()) else {
                    return Ok(None);
                };
                let n = rest.len().min(BODY_CHUNK);
                self.pos += n as u64;
                Ok(rest.get(..n))
            }
            Content::Stored(s) => {
                if !self.prefix_sent {
                    self.prefix_sent = true;
                    if !s.prefix.is_empty() {
                        return Ok(Some(&s.prefix));
                    }
                }
                if self.pos >= s.body_len {
                    return Ok(None);
                }
                let left = usize::try_from(s.body_len - self.pos).unwrap_or(usize::MAX);
                let want = left.min(BODY_CHUNK);
                let buf = std::mem::take(&mut self.buf);
                self.buf = s
                    .store
                    .read_body_range_into(s.body, self.pos, want, buf)
                    .await?;
                if self.buf.is_empty() {
                    return Err(StoreError::Io(
                        "stored body shorter than when it was signed".into(),
                    ));
                }
                self.buf.truncate(want);
                self.pos += self.buf.len() as u64;
                Ok(Some(&self.buf))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores `raw` as a queued body and returns its id.
    async fn stored(store: &Arc<dyn Store>, raw: Vec<u8>) -> BodyId {
        store
            .deliver(store::Delivery {
                local_raw: None,
                local: vec![],
                outbound: Some(store::Outbound {
                    raw,
                    sender: "a@example.test".into(),
                    recipients: vec!["b@remote.example".into()],
                    rcpt: vec![store::QueueRcpt::default()],
                    ..store::Outbound::default()
                }),
                internal_date: 0,
            })
            .await
            .expect("deliver");
        let far = i64::MAX / 2;
        let rows = store.claim_queue(far, far + 60, 100).await.expect("claim");
        rows.last().expect("row").body
    }

    #[test]
    fn stored_bodies_read_back_whole_at_every_chunk_boundary() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("dir");
        let store: Arc<dyn Store> =
            store::SqliteStore::open(dir.path(), store::StoreOptions::default()).expect("store");
        rt.block_on(async {
            let head = b"Subject: s\r\n\r\n".len();
            for len in [
                10,
                BODY_CHUNK - 1,
                BODY_CHUNK,
                BODY_CHUNK + 1,
                3 * BODY_CHUNK,
                3 * BODY_CHUNK + 7,
            ] {
                let mut raw = b"Subject: s\r\n\r\n".to_vec();
                while raw.len() < len {
                    raw.extend_from_slice(b"0123456789 \xc3\xa9\r\n");
                }
                raw.truncate(len.max(head));
                let body = stored(&store, raw.clone()).await;
                let content = Content::from_store(&store, body, None)
                    .await
                    .expect("content");
                assert_eq!(
                    matches!(content, Content::Stored(_)),
                    raw.len() >= STREAM_ABOVE,
                    "{len}"
                );
                assert_eq!(content.scan(), Scan::of(&raw), "{len}");
                let mut back = Vec::new();
                let mut pieces = content.pieces();
                while let Some(p) = pieces.next().await.expect("read") {
                    assert!(p.len() <= BODY_CHUNK);
                    back.extend_from_slice(p);
                }
                assert!(back == raw, "{len}: read back differs");
            }
        });
    }

    #[test]
    fn binary_content_is_nul_bare_cr_or_lf_or_an_overlong_line() {
        let binary = |raw: &[u8]| Scan::of(raw).binary();
        assert!(!binary(b"Subject: a\r\n\r\ntext\r\n"));
        assert!(!binary("caf\u{e9}\r\n".as_bytes()));
        assert!(binary(b"a\0b\r\n"));
        assert!(binary(b"a\rb\r\n"));
        assert!(binary(b"a\nb\r\n"));
        assert!(binary(b"ends in cr\r"));
        let long = [b'x'; 998];
        assert!(!binary(&[&long[..], b"\r\n"].concat()));
        let longer = [b'x'; 999];
        assert!(binary(&[&longer[..], b"\r\n"].concat()));
    }

    #[test]
    fn a_scan_in_pieces_is_the_scan_of_the_whole() {
        let samples: &[&[u8]] = &[
            b"a\r\nb\r\n",
            b"a\rb",
            b"a\r\n\nb",
            b"\r",
            b"",
            b"x\r\n\xc3\xa9\r\n",
            b"no final crlf",
        ];
        for raw in samples {
            let whole = Scan::of(raw);
            for size in 1..=raw.len().max(1) {
                let mut s = Scan::default();
                for piece in raw.chunks(size) {
                    s.write(piece);
                }
                assert_eq!(s, whole, "{:?} in pieces of {size}", raw);
                assert_eq!(s.ends_with_crlf(), raw.ends_with(b"\r\n"));
            }
        }
    }
}

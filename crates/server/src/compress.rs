//! A DEFLATE (RFC 1951) layer over a connection's stream, for IMAP
//! COMPRESS=DEFLATE (RFC 4978). It sits under [`crate::net::Io`]'s
//! buffers and over the plain or TLS stream, as RFC 4978 3 wants
//! (compression inside TLS): the session and its parsers never see
//! compressed bytes.
//!
//! Three promises, each the reason for a choice below:
//!
//! - A client never waits on buffered output: `poll_flush` ends what was
//!   written with a sync flush (RFC 4978 4: "the server ... MUST flush"
//!   so the client can decode every response it was sent), and
//!   [`crate::net::Io::flush`] flushes after every response batch.
//! - The reader never blocks on a partial or sync flush from the client:
//!   `poll_read` hands up whatever the inflater has decoded as soon as it
//!   has decoded anything, and asks the socket for more only when the
//!   inflater has used every octet it was given without producing any.
//! - An idle compressed session stays small: the compressor exists only
//!   while a reply is being written. After a sync flush every block is
//!   complete and byte-aligned, so the next reply can start a new raw
//!   DEFLATE stream with an empty history, which the client's inflater
//!   reads as more blocks of the same stream; [`Deflate::idle`] drops the
//!   compressor (zlib-rs's hash table alone is a fixed 128 KiB) and the
//!   emptied buffers while the session waits for the client. What an idle
//!   session keeps is the inflater, whose 32 KiB window the client's next
//!   command may refer back into: `bench/imap_compress_rss.sh` measured
//!   48.5 KiB more RSS per idle compressed session than per plain one,
//!   and 198 KiB more when the compressor was kept.
//!
//! zlib-rs is used directly, not through flate2, because flate2 fixes the
//! memory level at 8; its safe API takes the window and memory level.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use zlib_rs::{DeflateConfig, DeflateFlush, InflateFlush, Status};

use crate::net::Stream;

/// Compression level: zlib's default trade of CPU for size.
const LEVEL: i32 = 6;
/// log2 of the compressor's window: 8 KiB instead of deflate's 32 KiB.
/// RFC 4978 4 lets the server choose its window; the window only limits
/// how far back a match may refer, so a client's inflater is unaffected.
const WINDOW_BITS: i32 = 13;
/// zlib's memory level (1..=9, default 8): the symbol buffer, hence the
/// size of a block. 6 keeps blocks of 4096 symbols.
const MEM_LEVEL: i32 = 6;
/// The client may compress with any window up to 32 KiB (RFC 1951 2: a
/// distance is at most 32768), so the inflater's window is the largest.
const INFLATE_WINDOW_BITS: u8 = 15;
/// Octets of the stream read at a time to inflate.
const READ_CHUNK: usize = 8 * 1024;
/// Most octets inflated into the caller's buffer per read.
const INFLATE_OUT_MAX: usize = 64 * 1024;
/// Octets taken from one write at a time: bounds the compressed output
/// buffered before it is written.
const WRITE_CHUNK: usize = 16 * 1024;
/// A compressed-output buffer grown past this is freed once written.
const KEEP_OUT_CAPACITY: usize = 64 * 1024;

/// The compressed stream: DEFLATE both ways over `inner`.
pub struct Deflate {
    inner: Stream,
    inflate: zlib_rs::Inflate,
    /// Compressed octets read and not yet inflated.
    input: Vec<u8>,
    input_pos: usize,
    /// The client ended its DEFLATE stream (a final block): end of input.
    input_ended: bool,
    /// The compressor, while a reply is being written.
    deflate: Option<zlib_rs::Deflate>,
    /// Compressed octets not yet written to `inner`.
    output: Vec<u8>,
    output_pos: usize,
    /// Octets were compressed since the last sync flush.
    unflushed: bool,
}

fn data_error(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Deflate {
    /// Compresses over `inner`. `pending` holds octets already read from
    /// `inner` after the command that turned compression on: they are
    /// compressed (RFC 4978 3: the client compresses from its next
    /// command), so they are the inflater's first input.
    pub fn new(inner: Stream, pending: &[u8]) -> Deflate {
        Deflate {
            inner,
            inflate: zlib_rs::Inflate::new(false, INFLATE_WINDOW_BITS),
            input: pending.to_vec(),
            input_pos: 0,
            input_ended: false,
            deflate: None,
            output: Vec::new(),
            output_pos: 0,
            unflushed: false,
        }
    }

    /// The session waits for its client: everything written was flushed,
    /// so the compressor and the emptied buffers go (see the module
    /// comment); the next reply starts a new compressor.
    pub fn idle(&mut self) {
        if !self.unflushed && self.output_pos >= self.output.len() {
            self.deflate = None;
            self.output = Vec::new();
            self.output_pos = 0;
        }
        if self.input_pos >= self.input.len() {
            self.input = Vec::new();
            self.input_pos = 0;
        }
    }

    /// Runs the compressor over `input` with `flush`, appending to the
    /// output buffer until it has taken all the input and, for a flush,
    /// written all of it.
    fn compress(&mut self, mut input: &[u8], flush: DeflateFlush) -> io::Result<()> {
        let deflate = self.deflate.get_or_insert_with(|| {
            zlib_rs::Deflate::new_with_config(DeflateConfig {
                level: LEVEL,
                // Negative: a raw DEFLATE stream, no zlib header (RFC
                // 4978 3 names RFC 1951, not RFC 1950).
                window_bits: -WINDOW_BITS,
                mem_level: MEM_LEVEL,
                ..DeflateConfig::default()
            })
        });
        loop {
            let room = (input.len() / 2).max(4096);
            let start = self.output.len();
            self.output.resize(start + room, 0);
            let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
            let target = self.output.get_mut(start..).unwrap_or_default();
            let result = deflate.compress(input, target, flush);
            let used = (deflate.total_in() - in_before) as usize;
            let produced = (deflate.total_out() - out_before) as usize;
            self.output.truncate(start + produced);
            if result.is_err() {
                return Err(data_error("deflate failed"));
            }
            input = input.get(used..).unwrap_or_default();
            // zlib's rule: done when the input is used up and the output
            // space was not (so nothing more is pending inside).
            if input.is_empty() && produced < room {
                return Ok(());
            }
        }
    }

    /// Writes the buffered compressed octets to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.output_pos < self.output.len() {
            let rest = self.output.get(self.output_pos..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.output_pos += n;
        }
        self.output.clear();
        self.output_pos = 0;
        if self.output.capacity() > KEEP_OUT_CAPACITY {
            self.output = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Deflate {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.input_ended {
                return Poll::Ready(Ok(()));
            }
            if this.input_pos < this.input.len() {
                let input = this.input.get(this.input_pos..).unwrap_or_default();
                let (in_before, out_before) = (this.inflate.total_in(), this.inflate.total_out());
                // A bounded slice: the caller's buffer may be large and
                // uninitialised (a big literal's), and zeroing all of it
                // on every read would cost quadratic time.
                let room = buf.remaining().min(INFLATE_OUT_MAX);
                let status = this
                    .inflate
                    .decompress(
                        input,
                        buf.initialize_unfilled_to(room),
                        InflateFlush::NoFlush,
                    )
                    .map_err(|_| data_error("invalid DEFLATE data"))?;
                let used = (this.inflate.total_in() - in_before) as usize;
                let produced = (this.inflate.total_out() - out_before) as usize;
                this.input_pos += used;
                buf.advance(produced);
                if status == Status::StreamEnd {
                    this.input_ended = true;
                }
                if produced > 0 {
                    return Poll::Ready(Ok(()));
                }
                if used == 0 && !this.input_ended {
                    // Input and output room, and no progress: cannot be
                    // a valid stream; never spin on it.
                    return Poll::Ready(Err(data_error("DEFLATE made no progress")));
                }
                continue;
            }
            // Everything given was used (a flush point, a stored block's
            // header...): only now wait for the client.
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.input.clear();
            this.input.extend_from_slice(read.filled());
            this.input_pos = 0;
        }
    }
}

impl AsyncWrite for Deflate {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let take = data.get(..WRITE_CHUNK).unwrap_or(data);
        if take.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.compress(take, DeflateFlush::NoFlush)?;
        this.unflushed = true;
        Poll::Ready(Ok(take.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            // RFC 4978 4: a sync flush after each batch of responses, so
            // the client can decode all of it now.
            this.compress(&[], DeflateFlush::SyncFlush)?;
            this.unflushed = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn raw_deflate(data: &[u8], flush: DeflateFlush, d: &mut zlib_rs::Deflate) -> Vec<u8> {
        let mut out = vec![0u8; data.len() * 2 + 64];
        let before = d.total_out();
        d.compress(data, &mut out, flush).expect("deflate");
        out.truncate((d.total_out() - before) as usize);
        out
    }

    fn inflate_all(data: &[u8], i: &mut zlib_rs::Inflate) -> Vec<u8> {
        let mut out = vec![0u8; 1 << 20];
        let before = i.total_out();
        i.decompress(data, &mut out, InflateFlush::SyncFlush)
            .expect("inflate");
        out.truncate((i.total_out() - before) as usize);
        out
    }

    #[tokio::test]
    async fn a_partial_flush_from_the_client_is_read_at_once() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut d = Deflate::new(Stream::plain(ours), b"");
        let mut client = zlib_rs::Deflate::new(6, false, 15);
        // A partial flush: the data is decodable, and the stream stays
        // open (nothing more comes): the read must not wait for more.
        let bytes = raw_deflate(b"a NOOP\r\n", DeflateFlush::PartialFlush, &mut client);
        theirs.write_all(&bytes).await.expect("write");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), d.read(&mut buf))
            .await
            .expect("the read completes without more input")
            .expect("read");
        assert_eq!(&buf[..n], b"a NOOP\r\n");
    }

    #[tokio::test]
    async fn every_flush_ends_decodable_and_an_idle_reset_keeps_the_stream_valid() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut d = Deflate::new(Stream::plain(ours), b"");
        let mut client = zlib_rs::Inflate::new(false, 15);
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("* {i} FETCH (FLAGS (\\Seen))\r\n").into_bytes())
            .collect();
        d.write_all(&big).await.expect("write");
        d.flush().await.expect("flush");
        // The compressor goes while idle; the next reply starts afresh.
        d.idle();
        assert!(d.deflate.is_none());
        d.write_all(b"a OK done\r\n").await.expect("write");
        d.flush().await.expect("flush");
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        let mut plain = Vec::new();
        while !plain.ends_with(b"a OK done\r\n") {
            let n = theirs.read(&mut chunk).await.expect("read");
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
            plain.extend(inflate_all(&got, &mut client));
            got.clear();
        }
        assert_eq!(plain.len(), big.len() + 11);
        assert!(plain.starts_with(&big));
    }

    #[tokio::test]
    async fn octets_read_before_compression_started_are_inflated_first() {
        let mut client = zlib_rs::Deflate::new(6, false, 15);
        let first = raw_deflate(b"a NOOP\r\n", DeflateFlush::SyncFlush, &mut client);
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut d = Deflate::new(Stream::plain(ours), &first);
        let mut buf = [0u8; 64];
        let n = d.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"a NOOP\r\n");
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_hang() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut d = Deflate::new(Stream::plain(ours), b"");
        theirs.write_all(&[0xff; 16]).await.expect("write");
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), d.read(&mut buf))
            .await
            .expect("no hang");
        assert!(r.is_err());
    }
}

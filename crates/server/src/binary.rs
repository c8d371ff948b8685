//! Mail with binary parts stored as IMAP shows it (issue 19; RFC 3516
//! 4.3, RFC 9051 4.3: no NUL in a non-BINARY literal). A message whose
//! parts hold NUL octets (BDAT BINARYMIME mail, RFC 3030 3; an APPEND with
//! `literal8`, RFC 3516 4.4) is stored in its mailbox with those parts in
//! base64 ([`proto_imap::mime::encode_binary_parts`]), so FETCH sends the
//! stored octets as they are and RFC822.SIZE is the size of what FETCH
//! RFC822 shows; BINARY[part] decodes them back. A relayed copy leaves as
//! it came (the next hop announced BINARYMIME or gets it downgraded by the
//! outbound side, not by us here).
//!
//! A message held in memory is re-encoded whole. A spooled one (past
//! `[store] spool_threshold`) never is: one pass over its spool file finds
//! the parts to re-encode ([`Scanner::finish_binary`]), a second writes
//! the re-encoded message into a new spool file a chunk at a time
//! ([`BinaryEncoder`]), and the store copies that file as it copies any
//! spooled message. Mail without NUL (nearly all of it) costs the NUL
//! check done while it arrived ([`crate::spool::Message::nul`]), nothing
//! more.

use proto_imap::mime::scan::Scanner;
use proto_imap::mime::{BinaryEncoder, encode_binary_parts};
use store::{BODY_CHUNK, Delivered, Delivery, Spooled, Store, StoreError};

use crate::spool::{Message, SpoolError, SpoolWriter};

/// `head` then `tail` with every part holding NUL re-encoded in base64,
/// written through `writer` (into a new spool file, the message being past
/// the threshold): two passes over the spool file, a chunk at a time.
/// None when no part needs it. Blocking file I/O: run it off the async
/// workers.
pub fn reencode_spooled(
    head: &[u8],
    tail: &Spooled,
    mut writer: SpoolWriter,
) -> Result<Option<Message>, SpoolError> {
    let read_err = |e: StoreError| SpoolError::Io(e.to_string());
    let mut scanner = Scanner::new();
    scanner.feed(head);
    tail.for_each_chunk(|c| {
        scanner.feed(c);
        Ok(())
    })
    .map_err(read_err)?;
    let leaves = scanner.finish_binary();
    if leaves.is_empty() {
        return Ok(None);
    }
    let mut encoder = BinaryEncoder::new(leaves);
    // A chunk's worth of base64: 4/3 of it, and a line break per 57.
    let mut out = Vec::with_capacity(BODY_CHUNK / 3 * 4 + BODY_CHUNK / 57 * 2 + 1024);
    encoder.feed(head, &mut out);
    writer.write(&out);
    tail.for_each_chunk(|c| {
        out.clear();
        encoder.feed(c, &mut out);
        writer.write(&out);
        Ok(())
    })
    .map_err(read_err)?;
    out.clear();
    encoder.finish(&mut out);
    writer.write(&out);
    writer.finish().map(Some)
}

/// [`reencode_spooled`] on a blocking thread.
pub async fn reencode_spooled_async(
    head: Vec<u8>,
    tail: Spooled,
    writer: SpoolWriter,
) -> Result<Option<Message>, SpoolError> {
    tokio::task::spawn_blocking(move || reencode_spooled(&head, &tail, writer))
        .await
        .map_err(|e| SpoolError::Io(e.to_string()))?
}

fn store_err(e: SpoolError) -> StoreError {
    match e {
        SpoolError::DiskFull => StoreError::DiskFull,
        SpoolError::Io(why) => StoreError::Io(why),
    }
}

/// Stores what [`delivery::build`] made of a received message (`writes`:
/// the message first, then any DSN), whose first delivery's copies end in
/// `tail` when it was spooled; durable when it returns Ok. `nul`: the
/// message holds NUL, so its local copy is stored re-encoded (this
/// module's rule) and its relayed copy as received; `writer` takes the
/// re-encoded local copy of a spooled message.
pub async fn store_message(
    store: &dyn Store,
    mut writes: Vec<Delivery>,
    tail: Option<Spooled>,
    nul: bool,
    writer: SpoolWriter,
) -> Result<Vec<Delivered>, StoreError> {
    let first = writes.first_mut().filter(|_| nul);
    let Some(local_raw) = first.and_then(|d| d.local_raw.as_mut()) else {
        return match tail {
            Some(tail) => store.deliver_all_spooled(writes, tail).await,
            None => store.deliver_all(writes).await,
        };
    };
    let Some(tail) = tail else {
        if let Some(enc) = encode_binary_parts(local_raw) {
            *local_raw = enc;
        }
        return store.deliver_all(writes).await;
    };
    let head = std::mem::take(local_raw);
    let local = reencode_spooled_async(head.clone(), tail.clone(), writer)
        .await
        .map_err(store_err)?;
    let Some(local) = local else {
        *local_raw = head;
        return store.deliver_all_spooled(writes, tail).await;
    };
    *local_raw = local.head;
    let local_tail = local.tail.filter(|t| !t.is_empty());
    let relayed = writes.first().is_some_and(|d| d.outbound.is_some());
    match (relayed, local_tail) {
        (true, local_tail) => {
            store
                .deliver_all_spooled_apart(writes, local_tail, tail)
                .await
        }
        (false, Some(local_tail)) => store.deliver_all_spooled(writes, local_tail).await,
        (false, None) => store.deliver_all(writes).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::spool::Spool;

    /// A message of `parts` binary parts of `size` octets each, with NUL.
    fn binary_message(parts: usize, size: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut raw = b"Subject: bin\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        let mut contents = Vec::new();
        for p in 0..parts {
            let content: Vec<u8> = (0..size).map(|i| ((i * 7 + p) % 256) as u8).collect();
            raw.extend_from_slice(
                b"--b\r\nContent-Type: application/octet-stream\r\n\
                  Content-Transfer-Encoding: binary\r\n\r\n",
            );
            raw.extend_from_slice(&content);
            raw.extend_from_slice(b"\r\n");
            contents.push(content);
        }
        raw.extend_from_slice(b"--b--\r\n");
        (raw, contents)
    }

    fn spooled(spool: &Arc<Spool>, raw: &[u8]) -> Message {
        let mut w = spool.writer();
        for c in raw.chunks(1000) {
            w.write(c);
        }
        w.finish().expect("spooled")
    }

    #[test]
    fn a_spooled_message_is_reencoded_into_a_new_spool_file_as_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Arc::new(Spool::open(dir.path(), 4096).expect("spool"));
        let (raw, _) = binary_message(3, 3 * BODY_CHUNK / 2 + 5);
        let m = spooled(&spool, &raw);
        let tail = m.tail.clone().expect("spooled");
        let got = reencode_spooled(&m.head, &tail, spool.writer())
            .expect("re-encode")
            .expect("changed");
        let mut whole = got.head.clone();
        whole.extend_from_slice(&got.tail.expect("spooled").to_vec().expect("read"));
        assert!(whole == encode_binary_parts(&raw).expect("binary"));
        assert!(!got.nul);
        // Without binary parts nothing is written.
        let plain = spooled(&spool, &vec![b'a'; 10_000]);
        let tail = plain.tail.expect("spooled");
        assert!(
            reencode_spooled(&plain.head, &tail, spool.writer())
                .expect("scan")
                .is_none()
        );
    }
}

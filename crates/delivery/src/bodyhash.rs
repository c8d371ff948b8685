//! DKIM and ARC body hashes of a body that is not in memory (issue 19):
//! a message above `[store] spool_threshold` keeps only its header
//! section in memory, so the verifier gets an [`AuthenticatedMessage`]
//! parsed from that section alone, and the body hashes it needs
//! (RFC 6376 3.7 step 2, the `bh=` of each DKIM-Signature; RFC 8617 4.1.2,
//! the same for each ARC-Message-Signature) are computed here in one pass
//! over the spooled body, [`store::BODY_CHUNK`] at a time.
//!
//! The canonicalisation is mail-auth's own incremental one
//! ([`BodyHasher`], RFC 6376 3.4.3 simple and 3.4.4 relaxed, with `l=`
//! counted as mail-auth counts it on a whole message), so a big message
//! gets exactly the hash, and therefore the result, a small one would:
//! the tests below hold it to mail-auth's whole-message hash.

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{HashAlgorithm, HashImpl, Sha1, Sha256};
use mail_auth::dkim::Canonicalization;
use mail_auth::dkim::canonicalize::BodyHasher;
use store::{Spooled, StoreError};

/// One body hash a verifier or sealer looks up: body canonicalisation,
/// hash algorithm and `l=` (0: the whole body), as mail-auth keys
/// [`AuthenticatedMessage::body_hashes`].
pub type HashKey = (Canonicalization, HashAlgorithm, u64);

/// One computed body hash: its key and the digest, as an entry of
/// [`AuthenticatedMessage::body_hashes`].
pub type BodyHash = (Canonicalization, HashAlgorithm, u64, Vec<u8>);

/// The hash ARC sealing uses for the set we add (RFC 8617 4.1.2:
/// relaxed body, rsa-sha256, the whole body): mail-auth's sealer takes it
/// from [`AuthenticatedMessage::body_hashes`] when it is there, else it
/// would hash the body it was given, which for a spooled message is empty.
pub const SEAL_KEY: HashKey = (Canonicalization::Relaxed, HashAlgorithm::Sha256, 0);

/// The keys `message` needs hashes for: one per distinct signature
/// parameters, as mail-auth's parser collected them.
pub fn needed(message: &AuthenticatedMessage<'_>) -> Vec<HashKey> {
    message
        .body_hashes
        .iter()
        .map(|(c, h, l, _)| (*c, *h, *l))
        .collect()
}

/// The state of one body hash while the body goes past.
struct Running {
    key: HashKey,
    hasher: BodyHasher<<Sha256 as HashImpl>::Context>,
}

/// Body hashes computed while a body is read in pieces.
pub struct Hashes {
    running: Vec<Running>,
}

impl Hashes {
    /// Hashers for `keys` (duplicates are hashed once).
    pub fn new(keys: &[HashKey]) -> Hashes {
        let mut running: Vec<Running> = Vec::with_capacity(keys.len());
        for &key in keys {
            if running.iter().any(|r| r.key == key) {
                continue;
            }
            let (cb, ha, l) = key;
            // Both hash contexts are the crypto backend's one digest type.
            let context = match ha {
                HashAlgorithm::Sha1 => Sha1::hasher(),
                HashAlgorithm::Sha256 => Sha256::hasher(),
            };
            running.push(Running {
                key,
                hasher: BodyHasher::new(context, cb, l),
            });
        }
        Hashes { running }
    }

    /// The next piece of the body.
    pub fn write(&mut self, piece: &[u8]) {
        for r in &mut self.running {
            r.hasher.write(piece);
        }
    }

    /// The hashes, in mail-auth's [`AuthenticatedMessage::body_hashes`]
    /// form.
    pub fn finish(self) -> Vec<BodyHash> {
        use mail_auth::common::crypto::HashContext;
        self.running
            .into_iter()
            .map(|r| {
                let (context, _) = r.hasher.finish();
                let (cb, ha, l) = r.key;
                (cb, ha, l, context.complete().as_ref().to_vec())
            })
            .collect()
    }
}

/// The hashes of `keys` over `body`, read from its spool file in chunks
/// (blocking I/O: call it off the async threads).
pub fn of_spooled(keys: &[HashKey], body: &Spooled) -> Result<Vec<BodyHash>, StoreError> {
    let mut hashes = Hashes::new(keys);
    body.for_each_chunk(|piece| {
        hashes.write(piece);
        Ok(())
    })?;
    Ok(hashes.finish())
}

/// Replaces the hashes mail-auth computed over the (empty) body of a
/// header-only `message` with `hashes` of the real body, adding any the
/// parser did not ask for (the sealer's).
pub fn install(message: &mut AuthenticatedMessage<'_>, hashes: Vec<BodyHash>) {
    for (cb, ha, l, bh) in hashes {
        match message
            .body_hashes
            .iter_mut()
            .find(|(c, h, len, _)| (*c, *h, *len) == (cb, ha, l))
        {
            Some(slot) => slot.3 = bh,
            None => message.body_hashes.push((cb, ha, l, bh)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [HashKey; 6] = [
        (Canonicalization::Relaxed, HashAlgorithm::Sha256, 0),
        (Canonicalization::Simple, HashAlgorithm::Sha256, 0),
        (Canonicalization::Relaxed, HashAlgorithm::Sha1, 0),
        (Canonicalization::Simple, HashAlgorithm::Sha1, 0),
        (Canonicalization::Relaxed, HashAlgorithm::Sha256, 7),
        (Canonicalization::Simple, HashAlgorithm::Sha256, 3),
    ];

    /// Bodies that exercise RFC 6376 3.4.3 and 3.4.4: trailing empty
    /// lines, no final CRLF, runs of WSP inside and at line ends, WSP
    /// before CRLF across piece boundaries, empty bodies, bare LF and CR,
    /// 8-bit octets.
    const CORPUS: &[&[u8]] = &[
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"hello\r\n",
        b"hello",
        b"hello\r\n\r\n\r\n",
        b"hello \t \r\n",
        b"a  b\t\tc \t d\r\n",
        b" leading\r\n\tindent\r\n",
        b"line\r\n \r\n\t\r\n",
        b"line\r\n  \r\n\r\nafter blanks\r\n\r\n",
        b"bare\nlf\n\n",
        b"bare\rcr\r",
        b"mixed \r\n\n \r\r\n",
        b"trailing wsp no crlf   ",
        b"\t\t\t",
        b"caf\xc3\xa9 \xff\xfe\r\n",
        b"x\r\n\r\ny\r\n\r\n\r\n z \r\n",
        b".\r\n..\r\n.\r\n",
    ];

    /// mail-auth's own hash of `body`, through its whole-message parser.
    fn reference(body: &[u8], key: HashKey) -> Vec<u8> {
        let (cb, ha, l) = key;
        ha.hash(cb.canonical_body(body, l)).as_ref().to_vec()
    }

    fn pieces(body: &[u8], size: usize) -> Vec<BodyHash> {
        let mut h = Hashes::new(&KEYS);
        for piece in body.chunks(size.max(1)) {
            h.write(piece);
        }
        if body.is_empty() {
            h.write(b"");
        }
        h.finish()
    }

    #[test]
    fn piecewise_hashes_equal_mail_auths_whole_body_hashes() {
        let mut bodies: Vec<Vec<u8>> = CORPUS.iter().map(|b| b.to_vec()).collect();
        // A longer body mixing every case, so pieces split each of them.
        bodies.push(CORPUS.concat());
        for body in &bodies {
            for size in [1, 2, 3, 5, 7, 16, 64, body.len().max(1)] {
                for (cb, ha, l, bh) in pieces(body, size) {
                    assert_eq!(
                        bh,
                        reference(body, (cb, ha, l)),
                        "{cb:?} {ha:?} l={l} pieces of {size}: {:?}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
    }

    #[test]
    fn a_header_only_message_gets_the_hashes_of_its_spooled_body() {
        // The same message whole and split at the end of its header
        // section: after `install` the parsed header-only copy holds the
        // hashes the whole one has.
        let head = b"From: a@example.test\r\nDKIM-Signature: v=1; a=rsa-sha256; c=simple/relaxed; d=example.test; s=s; h=from; bh=AAAA; b=AAAA\r\n\r\n";
        let body = b"body  line \r\n\r\n\r\n";
        let whole = [&head[..], &body[..]].concat();
        let full = AuthenticatedMessage::parse(&whole).expect("parse");
        let mut part = AuthenticatedMessage::parse(head).expect("parse");
        assert_eq!(part.body_offset as usize, head.len());
        let keys = needed(&part);
        assert_eq!(
            keys,
            vec![(Canonicalization::Relaxed, HashAlgorithm::Sha256, 0)]
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("body");
        std::fs::write(&path, body).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let spooled = Spooled::new(file, 0, body.len() as u64);
        let mut wanted = keys.clone();
        wanted.push(SEAL_KEY);
        wanted.push((Canonicalization::Simple, HashAlgorithm::Sha1, 0));
        install(&mut part, of_spooled(&wanted, &spooled).expect("hash"));
        assert_eq!(part.body_hashes.first(), full.body_hashes.first());
        // The one the parser did not ask for is added.
        assert_eq!(part.body_hashes.len(), 2);
        assert_eq!(
            part.body_hashes.get(1).map(|h| h.3.clone()),
            Some(reference(
                body,
                (Canonicalization::Simple, HashAlgorithm::Sha1, 0)
            ))
        );
    }
}

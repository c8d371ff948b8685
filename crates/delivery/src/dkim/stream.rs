//! DKIM signing of a message read in pieces (issue 19): the outbound
//! worker streams a big body from the store, so the signatures are made
//! with mail-auth's streaming signer, which keeps the header section and
//! hashes the body as it goes (RFC 6376 3.7: the body hash first, then the
//! signature over the header fields and the DKIM-Signature with `bh=`).
//! The keys, header list and canonicalisation are [`Signer::sign`]'s, so
//! a streamed message is signed exactly as a whole one would be.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigningStream;

use super::{Loaded, Signer, Signers};

/// The signing keys at one moment, held while one message is signed.
pub struct Keys {
    signers: Signers,
}

impl Signer {
    /// The keys that sign now, for [`Keys::streams_for`].
    pub fn keys(&self) -> Keys {
        Keys {
            signers: self.signers(),
        }
    }
}

impl Keys {
    /// Signing streams for a message whose header section is `head`
    /// (ending with its empty line): one per key of its From domain, as
    /// [`Signer::sign`] picks them; None when the domain has none.
    pub fn streams_for(&self, head: &[u8]) -> Option<SigningStreams<'_>> {
        let domain = super::from_domain(head)?;
        let streams: Vec<(&str, Stream<'_>)> = self
            .signers
            .iter()
            .filter(|(d, _)| d.eq_ignore_ascii_case(&domain))
            .map(|(d, l)| {
                let s = match l {
                    Loaded::Rsa(s) => Stream::Rsa(s.sign_streaming()),
                    Loaded::Ed25519(s) => Stream::Ed25519(s.sign_streaming()),
                };
                (d.as_str(), s)
            })
            .collect();
        (!streams.is_empty()).then_some(SigningStreams { streams })
    }
}

enum Stream<'a> {
    Rsa(DkimSigningStream<'a, RsaKey<Sha256>>),
    Ed25519(DkimSigningStream<'a, Ed25519Key>),
}

/// The signatures of one message in the making: feed it the whole
/// message, header section first, in pieces of any size.
pub struct SigningStreams<'a> {
    streams: Vec<(&'a str, Stream<'a>)>,
}

impl SigningStreams<'_> {
    pub fn write(&mut self, piece: &[u8]) {
        for (_, s) in &mut self.streams {
            match s {
                Stream::Rsa(s) => s.write(piece),
                Stream::Ed25519(s) => s.write(piece),
            }
        }
    }

    /// The DKIM-Signature fields to put before the message, in the order
    /// [`Signer::sign`] puts them; a key that fails is logged and left
    /// out (unsigned mail is better than lost mail).
    pub fn finish(self) -> Vec<u8> {
        let mut fields = String::new();
        for (domain, s) in self.streams {
            let sig = match s {
                Stream::Rsa(s) => s.finish(),
                Stream::Ed25519(s) => s.finish(),
            };
            match sig {
                Ok(sig) => fields.push_str(&sig.to_header()),
                Err(e) => tracing::warn!(domain = %domain, error = %e, "dkim: signing failed"),
            }
        }
        fields.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, generate};
    use super::*;

    /// The `bh=` values of the DKIM-Signature fields in `fields`.
    fn body_hashes(fields: &str) -> Vec<String> {
        fields
            .split("bh=")
            .skip(1)
            .filter_map(|r| r.split(';').next())
            .map(|v| v.split_whitespace().collect())
            .collect()
    }

    #[test]
    fn a_message_signed_in_pieces_has_the_body_hash_of_one_signed_whole() {
        let dir = tempfile::tempdir().expect("dir");
        for a in [Algorithm::Rsa, Algorithm::Ed25519] {
            generate(dir.path(), "example.test", None, a).expect("key");
        }
        let signer = Signer::new(dir.path());
        let mut msg = b"From: a@example.test\r\nTo: b@other.test\r\nSubject: s\r\n\r\n".to_vec();
        for i in 0..2000 {
            msg.extend_from_slice(format!("line {i}  \t with  spaces \r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n\r\n");
        let whole = String::from_utf8(signer.sign(msg.clone())).expect("utf8");
        let head_end = msg.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        let keys = signer.keys();
        let mut streams = keys
            .streams_for(msg.get(..head_end).expect("head"))
            .expect("keys for example.test");
        for piece in msg.chunks(777) {
            streams.write(piece);
        }
        let fields = String::from_utf8(streams.finish()).expect("utf8");
        assert_eq!(fields.matches("DKIM-Signature:").count(), 2, "{fields}");
        assert_eq!(body_hashes(&fields), body_hashes(&whole));
        assert_eq!(body_hashes(&fields).len(), 2);

        // Another domain's mail gets no streams.
        assert!(
            keys.streams_for(b"From: x@elsewhere.test\r\n\r\n")
                .is_none()
        );
    }
}

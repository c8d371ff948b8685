//! SCRAM-SHA-256 (RFC 5802 with the SHA-256 of RFC 7677), server side, as
//! a step machine, plus the key derivation the directory stores and a
//! small client for tests.
//!
//! The exchange (RFC 5802 3, 5):
//! 1. [`ScramServer::start`] parses client-first-message: the GS2 header
//!    (`n,,` or `y,,`, with an optional `a=` authzid; `p=` channel binding
//!    is refused, we do not offer SCRAM-SHA-256-PLUS) and the bare part
//!    `n=user,r=nonce`. It returns [`ScramNeedKeys`] with the SASLprep'd
//!    user name for the directory lookup.
//! 2. [`ScramNeedKeys::with_keys`] takes that user's [`ScramKeys`] (or the
//!    directory's fake keys for an unknown name: the exchange then fails
//!    at the proof exactly like a wrong password, so `e=unknown-user` is
//!    never sent and the server does not reveal who exists) and a fresh
//!    [`ServerNonce`], and returns server-first-message.
//! 3. [`ScramSentFirst::finish`] checks client-final-message (channel
//!    binding, nonce, ClientProof against StoredKey in constant time) and
//!    returns server-final-message `v=ServerSignature`.
//!
//! Sans-I/O and free of an RNG: the caller supplies the server nonce's
//! random octets. Messages are the decoded octets; each protocol does the
//! base64 of its own framing (RFC 4954 4, RFC 9051 6.2.2, RFC 5034 4).

use std::fmt;
use std::num::NonZeroU32;

use ring::{digest, hmac, pbkdf2};

use crate::sasl::{base64_decode, base64_encode};
use crate::saslprep::{saslprep, saslprep_password};

/// RFC 7677 4: "iteration count ... at least 4096".
pub const MIN_ITERATIONS: u32 = 4096;

/// Octets of SHA-256 output: StoredKey, ServerKey, ClientProof and the
/// signatures are all this long (RFC 5802 3 with RFC 7677's H = SHA-256).
pub const KEY_LEN: usize = 32;

/// Random octets in a server nonce. RFC 5802 5.1 asks for a fresh,
/// unpredictable nonce and sets no length; 18 octets are 144 bits and 24
/// base64 characters with no padding, about what the RFC 7677 3 example
/// and common servers use.
pub const SERVER_NONCE_LEN: usize = 18;

/// Longest user name or authzid we take, in octets after `=2C`/`=3D`
/// decoding: RFC 5802 sets none; PLAIN's 255 (RFC 4616 2) is the bound the
/// other mechanisms live with.
pub const MAX_NAME_LEN: usize = 255;

/// Longest client nonce we echo back: RFC 5802 sets none; clients send 18
/// to 32 random octets in base64, so 256 characters is generous and bounds
/// server-first-message.
pub const MAX_CLIENT_NONCE_LEN: usize = 256;

/// Why a SCRAM exchange failed. Each variant is one server-error-value of
/// RFC 5802 7 ([`ScramError::server_error_value`]); a protocol may send
/// [`ScramError::server_final`] as its last challenge or simply fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramError {
    /// Not a SCRAM message: not UTF-8, an attribute missing, out of order
    /// or malformed, bad base64 inside it (`invalid-encoding`).
    InvalidEncoding,
    /// A mandatory extension (`m=`) we do not know
    /// (`extensions-not-supported`, RFC 5802 5.1).
    ExtensionsNotSupported,
    /// `=` not followed by `2C` or `3D` in a name, a NUL, or a name that
    /// SASLprep refuses (`invalid-username-encoding`, RFC 5802 5.1).
    InvalidUsernameEncoding,
    /// The client asked for channel binding (`p=`), which we do not offer
    /// without -PLUS (`channel-binding-not-supported`, RFC 5802 6).
    ChannelBindingNotSupported,
    /// `c=` of client-final-message is not the GS2 header of
    /// client-first-message (`channel-bindings-dont-match`, RFC 5802 6).
    ChannelBindingsDontMatch,
    /// `r=` of client-final-message is not the nonce of
    /// server-first-message (RFC 5802 5.1 "MUST fail"; RFC 5802 7 has no
    /// value of its own, so `other-error`).
    NonceMismatch,
    /// The proof does not match: a wrong password or an unknown user, told
    /// apart by nobody (`invalid-proof`).
    InvalidProof,
}

impl ScramError {
    /// The RFC 5802 7 server-error-value.
    pub fn server_error_value(self) -> &'static str {
        match self {
            ScramError::InvalidEncoding => "invalid-encoding",
            ScramError::ExtensionsNotSupported => "extensions-not-supported",
            ScramError::InvalidUsernameEncoding => "invalid-username-encoding",
            ScramError::ChannelBindingNotSupported => "channel-binding-not-supported",
            ScramError::ChannelBindingsDontMatch => "channel-bindings-dont-match",
            ScramError::NonceMismatch => "other-error",
            ScramError::InvalidProof => "invalid-proof",
        }
    }

    /// server-final-message carrying this error: `e=<value>` (RFC 5802 7).
    pub fn server_final(self) -> Vec<u8> {
        format!("e={}", self.server_error_value()).into_bytes()
    }

    /// True when the client's message could not be read (a syntax error:
    /// SMTP `501 5.5.2`, IMAP `BAD`); false when it was read and the
    /// authentication failed (`535 5.7.8`, `NO [AUTHENTICATIONFAILED]`).
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            ScramError::InvalidEncoding
                | ScramError::ExtensionsNotSupported
                | ScramError::InvalidUsernameEncoding
        )
    }
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SCRAM: {}", self.server_error_value())
    }
}

impl std::error::Error for ScramError {}

/// What the server keeps per user for SCRAM-SHA-256 (RFC 5802 3): enough
/// to check a proof and sign the reply, never enough to log in as the user
/// elsewhere without the password. `Debug` leaves the keys out.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: NonZeroU32,
    /// H(ClientKey).
    pub stored_key: [u8; KEY_LEN],
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; KEY_LEN],
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys")
            .field("salt", &base64_encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// The keys for `password` (RFC 5802 3): SaltedPassword =
/// PBKDF2-HMAC-SHA-256(Normalize(password), salt, iterations), ClientKey =
/// HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey), ServerKey
/// = HMAC(SaltedPassword, "Server Key"). Normalize is
/// [`saslprep_password`].
pub fn derive_keys(password: &str, salt: &[u8], iterations: NonZeroU32) -> ScramKeys {
    let salted = salted_password(password, salt, iterations);
    let client_key = hmac_sha256(&salted, b"Client Key");
    ScramKeys {
        salt: salt.to_vec(),
        iterations,
        stored_key: sha256(&client_key),
        server_key: hmac_sha256(&salted, b"Server Key"),
    }
}

fn salted_password(password: &str, salt: &[u8], iterations: NonZeroU32) -> [u8; KEY_LEN] {
    let mut salted = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        saslprep_password(password).as_bytes(),
        &mut salted,
    );
    salted
}

/// The server's half of the nonce: printable, no comma (RFC 5802 7
/// `printable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNonce(String);

impl ServerNonce {
    /// From fresh random octets (the caller's RNG, e.g. ring's
    /// `SystemRandom`), in base64: its alphabet is all `printable`.
    pub fn from_random(random: &[u8; SERVER_NONCE_LEN]) -> ServerNonce {
        ServerNonce(base64_encode(random))
    }

    /// A given nonce (RFC test vectors); None unless it is `printable`.
    pub fn from_printable(text: &str) -> Option<ServerNonce> {
        is_printable(text).then(|| ServerNonce(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 5802 7: printable = %x21-2B / %x2D-7E, at least one.
fn is_printable(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b',')
}

/// RFC 5802 5.1 saslname: `=2C` is `,`, `=3D` is `=` (ABNF strings are
/// case-insensitive, so `=2c` too); any other `=`, or a NUL, is
/// invalid-username-encoding. Then SASLprep (RFC 5802 5.1, RFC 4013).
fn decode_saslname(raw: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['=', '\0']) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let escape = after.get(..3).unwrap_or("");
        if escape.eq_ignore_ascii_case("=2C") {
            out.push(',');
        } else if escape.eq_ignore_ascii_case("=3D") {
            out.push('=');
        } else {
            return Err(ScramError::InvalidUsernameEncoding);
        }
        rest = after.get(3..).unwrap_or("");
    }
    out.push_str(rest);
    if out.is_empty() || out.len() > MAX_NAME_LEN {
        return Err(ScramError::InvalidUsernameEncoding);
    }
    saslprep(&out)
        .map(|p| p.into_owned())
        .map_err(|_| ScramError::InvalidUsernameEncoding)
}

/// The inverse of [`decode_saslname`] (clients).
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Value of attribute `name` (`a=value`), RFC 5802 5: a single letter,
/// `=`, then the value.
fn attribute(attr: &str, name: char) -> Option<&str> {
    attr.strip_prefix(name)?.strip_prefix('=')
}

/// RFC 5802 7 `attr-val` of an optional extension: an ALPHA, `=`, then
/// `1*value-char` (not empty).
fn is_extension(attr: &str) -> bool {
    let mut chars = attr.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.next() == Some('=')
        && !chars.as_str().is_empty()
}

/// Entry point of the server side.
pub struct ScramServer;

impl ScramServer {
    /// Parses client-first-message (RFC 5802 5.1, 7):
    /// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username ","
    /// nonce ["," extensions]`.
    pub fn start(client_first: &[u8]) -> Result<ScramNeedKeys, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::InvalidEncoding)?;
        let (flag, rest) = text.split_once(',').ok_or(ScramError::InvalidEncoding)?;
        match flag {
            // "n": the client does not support channel binding; "y": it
            // does but thinks we do not, which is true while -PLUS is not
            // advertised (RFC 5802 6; once it is, "y" must fail with
            // server-does-support-channel-binding).
            "n" | "y" => {}
            _ if attribute(flag, 'p').is_some() => {
                return Err(ScramError::ChannelBindingNotSupported);
            }
            _ => return Err(ScramError::InvalidEncoding),
        }
        let (authz, bare) = rest.split_once(',').ok_or(ScramError::InvalidEncoding)?;
        let authzid = if authz.is_empty() {
            None
        } else {
            let raw = attribute(authz, 'a').ok_or(ScramError::InvalidEncoding)?;
            Some(decode_saslname(raw)?)
        };
        let gs2_header_len = flag.len() + 1 + authz.len() + 1;
        let gs2_header = text
            .get(..gs2_header_len)
            .ok_or(ScramError::InvalidEncoding)?;

        let mut attrs = bare.split(',');
        let first = attrs.next().ok_or(ScramError::InvalidEncoding)?;
        if attribute(first, 'm').is_some() {
            return Err(ScramError::ExtensionsNotSupported);
        }
        let username = match attribute(first, 'n') {
            Some(raw) => decode_saslname(raw)?,
            None => return Err(ScramError::InvalidEncoding),
        };
        let client_nonce = attrs
            .next()
            .and_then(|a| attribute(a, 'r'))
            .ok_or(ScramError::InvalidEncoding)?;
        if !is_printable(client_nonce) || client_nonce.len() > MAX_CLIENT_NONCE_LEN {
            return Err(ScramError::InvalidEncoding);
        }
        // RFC 5802 5.1: unknown optional extensions are ignored.
        if !attrs.all(is_extension) {
            return Err(ScramError::InvalidEncoding);
        }
        Ok(ScramNeedKeys {
            username,
            authzid,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            client_nonce: client_nonce.to_string(),
        })
    }
}

/// client-first-message has been read; the user's keys are needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramNeedKeys {
    username: String,
    authzid: Option<String>,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
}

impl ScramNeedKeys {
    /// The authentication identity, `=2C`/`=3D` decoded and SASLprep'd:
    /// what to look up in the directory.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The authorization identity of `a=`, decoded and SASLprep'd the same
    /// way; None when the client acts as itself.
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// server-first-message (RFC 5802 5.1): `r=<client nonce><server
    /// nonce>,s=<base64 salt>,i=<iterations>`, and the state that checks
    /// the client's reply. `keys` are the user's, or the directory's fake
    /// keys for a name that matches nobody.
    pub fn with_keys(self, keys: ScramKeys, nonce: &ServerNonce) -> (Vec<u8>, ScramSentFirst) {
        let full_nonce = format!("{}{}", self.client_nonce, nonce.as_str());
        let server_first = format!(
            "r={full_nonce},s={},i={}",
            base64_encode(&keys.salt),
            keys.iterations
        );
        let bytes = server_first.clone().into_bytes();
        let state = ScramSentFirst {
            username: self.username,
            authzid: self.authzid,
            gs2_header: self.gs2_header,
            client_first_bare: self.client_first_bare,
            server_first,
            full_nonce,
            keys,
        };
        (bytes, state)
    }
}

/// server-first-message has been sent; waiting for client-final-message.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSentFirst {
    username: String,
    authzid: Option<String>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    full_nonce: String,
    keys: ScramKeys,
}

impl fmt::Debug for ScramSentFirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSentFirst")
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .field("server_first", &self.server_first)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A successful exchange: who authenticated, and as whom they act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramOutcome {
    /// As [`ScramNeedKeys::username`].
    pub username: String,
    /// As [`ScramNeedKeys::authzid`]; SPEC 7: must be None or equal to the
    /// account, the caller checks.
    pub authzid: Option<String>,
}

impl ScramSentFirst {
    /// The user name the keys were looked up for.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks client-final-message (RFC 5802 5.1, 7):
    /// `c=<base64 gs2 header>,r=<nonce>[,extensions],p=<base64 proof>`.
    /// On success returns server-final-message `v=<base64
    /// ServerSignature>`, which the client checks before trusting us.
    pub fn finish(self, client_final: &[u8]) -> Result<(Vec<u8>, ScramOutcome), ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::InvalidEncoding)?;
        // The proof is the last attribute; no value holds a comma, so the
        // last ",p=" starts it.
        let at = text.rfind(",p=").ok_or(ScramError::InvalidEncoding)?;
        let without_proof = text.get(..at).ok_or(ScramError::InvalidEncoding)?;
        let proof_b64 = text.get(at + 3..).ok_or(ScramError::InvalidEncoding)?;

        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| attribute(a, 'c'))
            .ok_or(ScramError::InvalidEncoding)?;
        let cbind = base64_decode(cbind).map_err(|_| ScramError::InvalidEncoding)?;
        let nonce = attrs
            .next()
            .and_then(|a| attribute(a, 'r'))
            .ok_or(ScramError::InvalidEncoding)?;
        if !attrs.all(is_extension) {
            return Err(ScramError::InvalidEncoding);
        }
        let proof = base64_decode(proof_b64).map_err(|_| ScramError::InvalidEncoding)?;
        let proof: [u8; KEY_LEN] = proof
            .as_slice()
            .try_into()
            .map_err(|_| ScramError::InvalidEncoding)?;

        // RFC 5802 6 / 7: for "n" and "y" cbind-input is the GS2 header
        // alone ("biws" for "n,,", "eSws" for "y,,").
        if cbind != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingsDontMatch);
        }
        if nonce != self.full_nonce {
            return Err(ScramError::NonceMismatch);
        }

        // RFC 5802 3: AuthMessage = client-first-message-bare + "," +
        // server-first-message + "," + client-final-message-without-proof.
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac_sha256(&self.keys.stored_key, auth_message.as_bytes());
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        if !same_key(&sha256(&client_key), &self.keys.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_sha256(&self.keys.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", base64_encode(&server_signature)).into_bytes();
        Ok((
            server_final,
            ScramOutcome {
                username: self.username,
                authzid: self.authzid,
            },
        ))
    }
}

/// Constant-time equality of two keys (RFC 5802 9 leaves the comparison
/// to the server; a timing leak would let a client learn StoredKey
/// octet by octet): `hmac::verify` compares in constant time, here an HMAC
/// of `a` against the HMAC of `b` under a key of their own.
fn same_key(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"mailroom scram key comparison");
    hmac::verify(&key, a, hmac::sign(&key, b).as_ref()).is_ok()
}

/// The client side, for tests (ours and the protocols'): RFC 5802 5 with
/// `n,,` and no authzid unless given.
pub struct ScramClient {
    password: String,
    client_first_bare: String,
    gs2_header: String,
    client_nonce: String,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("client_first_bare", &self.client_first_bare)
            .finish_non_exhaustive()
    }
}

/// A client that has sent client-final-message and expects `v=`.
#[derive(Debug)]
pub struct ScramClientFinal {
    server_signature: [u8; KEY_LEN],
}

impl ScramClient {
    /// client-first-message for `username` (SASLprep'd, `=`/`,` escaped)
    /// with `client_nonce` (printable) and an optional authzid.
    pub fn new(
        username: &str,
        password: &str,
        authzid: Option<&str>,
        client_nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        let username = saslprep(username).map_or_else(|_| username.to_string(), |p| p.into());
        let gs2_header = match authzid {
            Some(a) => format!("n,a={},", encode_saslname(a)),
            None => "n,,".to_string(),
        };
        let client_first_bare = format!("n={},r={client_nonce}", encode_saslname(&username));
        let first = format!("{gs2_header}{client_first_bare}").into_bytes();
        let client = ScramClient {
            password: password.to_string(),
            client_first_bare,
            gs2_header,
            client_nonce: client_nonce.to_string(),
        };
        (client, first)
    }

    /// client-final-message for server-first-message.
    pub fn server_first(
        self,
        server_first: &[u8],
    ) -> Result<(Vec<u8>, ScramClientFinal), ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::InvalidEncoding)?;
        let mut attrs = text.split(',');
        let mut next = |name| {
            attrs
                .next()
                .and_then(|a| attribute(a, name))
                .ok_or(ScramError::InvalidEncoding)
        };
        let nonce = next('r')?;
        let salt = base64_decode(next('s')?).map_err(|_| ScramError::InvalidEncoding)?;
        let iterations: NonZeroU32 = next('i')?
            .parse()
            .map_err(|_| ScramError::InvalidEncoding)?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let without_proof = format!("c={},r={nonce}", base64_encode(self.gs2_header.as_bytes()));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let client_signature = hmac_sha256(&sha256(&client_key), auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = hmac_sha256(&salted, b"Server Key");
        let final_message = format!("{without_proof},p={}", base64_encode(&proof)).into_bytes();
        Ok((
            final_message,
            ScramClientFinal {
                server_signature: hmac_sha256(&server_key, auth_message.as_bytes()),
            },
        ))
    }
}

impl ScramClientFinal {
    /// Checks server-final-message: `v=` with the expected signature, or
    /// the server's `e=` error.
    pub fn server_final(self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final).map_err(|_| ScramError::InvalidEncoding)?;
        let v = attribute(text, 'v').ok_or(ScramError::InvalidProof)?;
        let v = base64_decode(v).map_err(|_| ScramError::InvalidEncoding)?;
        if v == self.server_signature {
            Ok(())
        } else {
            Err(ScramError::InvalidProof)
        }
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;

//! DKIM keys and the signing of outbound mail (RFC 6376, RFC 8463).
//!
//! Keys live in `<data_dir>/dkim/`, one file per key (0600: the private
//! key signs for the whole domain); on the PostgreSQL backend they live in
//! the database instead, in the same text form ([`KeyInfo::to_text`]), so
//! every node signs alike ([`Signer::with_keys`], refreshed by the server). `mailroom dkim generate` writes them;
//! the queue worker signs each message it sends whose RFC 5322 From domain
//! has a key, with the newest key per domain and algorithm, so a domain
//! with an RSA and an Ed25519 key gets both signatures (RFC 8463 4: a
//! receiver that does not know Ed25519 still has the RSA one).
//!
//! The same keys (RSA only, RFC 8617 4.1.3) seal the ARC sets that
//! forwarded mail gets at the end of DATA ([`Signer::arc_seal`]).
//!
//! Signing happens at send time, not at queue time, so bounces made by the
//! worker and messages queued before a key existed are signed too, and a
//! key rotated while mail waits signs its next attempt.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};

mod stream;
pub use stream::{Keys, SigningStreams};

/// The folder under the data directory that holds the keys.
pub const KEY_DIR: &str = "dkim";

/// RSA key size for new keys: RFC 8301 3.2 requires at least 1024 bits
/// and asks for 2048.
pub const RSA_BITS: usize = 2048;

/// Default selectors, one per algorithm, so both keys can be published.
pub const RSA_SELECTOR: &str = "mr-rsa";
pub const ED25519_SELECTOR: &str = "mr-ed";

/// RFC 6376 5.4.1: the header fields a signature should cover (plus the
/// MIME fields and Message-ID, which change the message's meaning).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// RFC 6376 8.15: fields listed once more than they occur, so that a
/// second From, To or Subject added in transit breaks the signature. The
/// signer treats a repeated name as one that is absent.
pub const OVERSIGNED_HEADERS: &[&str] = &["From", "To", "Subject"];

/// The most keys one domain's folder is read for; more is a mistake, and
/// reading stops there rather than growing without bound.
pub const MAX_KEYS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Some(Algorithm::Rsa),
            "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    pub fn default_selector(self) -> &'static str {
        match self {
            Algorithm::Rsa => RSA_SELECTOR,
            Algorithm::Ed25519 => ED25519_SELECTOR,
        }
    }
}

/// One stored key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    /// Unix seconds: the newest key per domain and algorithm signs.
    pub created: i64,
    /// The private key: PKCS#1 DER for RSA, PKCS#8 DER for Ed25519.
    private: Vec<u8>,
    /// The `p=` value: SubjectPublicKeyInfo for RSA (what RFC 6376
    /// verifiers such as OpenDKIM and dkimpy expect), the raw 32-octet key
    /// for Ed25519 (RFC 8463 4).
    public: Vec<u8>,
}

impl KeyInfo {
    /// The key as stored: a key file's text, or a database row's value.
    pub fn to_text(&self) -> String {
        format!(
            "domain = {}\nselector = {}\nalgorithm = {}\ncreated = {}\nprivate = {}\npublic = {}\n",
            self.domain,
            self.selector,
            self.algorithm.name(),
            self.created,
            B64.encode(&self.private),
            B64.encode(&self.public),
        )
    }

    /// A key read back from [`KeyInfo::to_text`]; None when unreadable.
    pub fn from_text(text: &str) -> Option<KeyInfo> {
        parse_key(text)
    }

    /// The name the key is stored under (its file name in the key folder):
    /// one key per domain and selector.
    pub fn storage_name(&self) -> String {
        file_name(&self.domain, &self.selector)
    }

    /// The owner name of the TXT record (RFC 6376 3.6.2.1).
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish (RFC 6376 3.6.1).
    pub fn record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.name(),
            B64.encode(&self.public)
        )
    }
}

#[derive(Debug)]
pub enum KeyError {
    Io(std::io::Error),
    Exists(PathBuf),
    BadName(String),
    Crypto(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Io(e) => write!(f, "{e}"),
            KeyError::Exists(p) => write!(
                f,
                "{} exists: choose another --selector to rotate keys",
                p.display()
            ),
            KeyError::BadName(n) => write!(f, "not a valid domain or selector: {n:?}"),
            KeyError::Crypto(e) => write!(f, "key generation failed: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<std::io::Error> for KeyError {
    fn from(e: std::io::Error) -> Self {
        KeyError::Io(e)
    }
}

/// A DNS label or dotted name made of letters, digits, '-' and '_': what
/// a selector and a domain may be (RFC 6376 3.1), and safe as a file name.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn file_name(domain: &str, selector: &str) -> String {
    format!("{domain}+{selector}.key")
}

/// Makes a key for `domain` (validated names, the algorithm's default
/// selector) without storing it.
pub fn make(
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
) -> Result<KeyInfo, KeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.unwrap_or(algorithm.default_selector()).to_string();
    for n in [&domain, &selector] {
        if !valid_name(n) {
            return Err(KeyError::BadName(n.clone()));
        }
    }
    let (private, public) = match algorithm {
        Algorithm::Rsa => {
            let pair =
                DkimKeyPair::generate_rsa(RSA_BITS).map_err(|e| KeyError::Crypto(e.to_string()))?;
            let (private, pkcs1) = pair.into_inner();
            (private, rsa_spki(&pkcs1))
        }
        Algorithm::Ed25519 => {
            let pair =
                DkimKeyPair::generate_ed25519().map_err(|e| KeyError::Crypto(e.to_string()))?;
            pair.into_inner()
        }
    };
    let created = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(KeyInfo {
        domain,
        selector,
        algorithm,
        created,
        private,
        public,
    })
}

/// Makes a key for `domain`, stores it under `data_dir` (0600) and returns
/// it, so the caller can print the record to publish.
pub fn generate(
    data_dir: &Path,
    domain: &str,
    selector: Option<&str>,
    algorithm: Algorithm,
) -> Result<KeyInfo, KeyError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.unwrap_or(algorithm.default_selector()).to_string();
    for n in [&domain, &selector] {
        if !valid_name(n) {
            return Err(KeyError::BadName(n.clone()));
        }
    }
    let dir = data_dir.join(KEY_DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file_name(&domain, &selector));
    if path.exists() {
        return Err(KeyError::Exists(path));
    }
    let key = make(&domain, Some(&selector), algorithm)?;
    write_key(&dir, &path, &key)?;
    Ok(key)
}

/// Writes the key file whole or not at all: a temporary file (0600 from
/// its creation, never readable by others), fsync, rename, fsync the
/// folder.
fn write_key(dir: &Path, path: &Path, key: &KeyInfo) -> Result<(), KeyError> {
    let text = key.to_text();
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn parse_key(text: &str) -> Option<KeyInfo> {
    let get = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    Some(KeyInfo {
        domain: get("domain")?,
        selector: get("selector")?,
        algorithm: Algorithm::parse(&get("algorithm")?)?,
        created: get("created")?.parse().ok()?,
        private: B64.decode(get("private")?).ok()?,
        public: B64.decode(get("public")?).ok()?,
    })
}

/// Every key under `data_dir`, oldest first; unreadable files are logged
/// and skipped.
pub fn list(data_dir: &Path) -> Result<Vec<KeyInfo>, KeyError> {
    let dir = data_dir.join(KEY_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut keys = Vec::new();
    for entry in entries.take(MAX_KEYS) {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("key") {
            continue;
        }
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_key(&t))
        {
            Some(k) => keys.push(k),
            None => tracing::warn!(path = %path.display(), "dkim: unreadable key file skipped"),
        }
    }
    Ok(sorted(keys))
}

/// Keys oldest first, ties by domain and selector: the order in which
/// [`signs`] takes the last one per domain and algorithm.
pub fn sorted(mut keys: Vec<KeyInfo>) -> Vec<KeyInfo> {
    keys.sort_by(|a, b| {
        (a.created, &a.domain, &a.selector).cmp(&(b.created, &b.domain, &b.selector))
    });
    keys
}

/// True when `key` is the one that signs for its domain and algorithm:
/// the newest (ties go to the later selector name, as `list` orders them).
pub fn signs(keys: &[KeyInfo], key: &KeyInfo) -> bool {
    newest(keys, &key.domain, key.algorithm).is_some_and(|k| k.selector == key.selector)
}

fn newest<'a>(keys: &'a [KeyInfo], domain: &str, algorithm: Algorithm) -> Option<&'a KeyInfo> {
    keys.iter()
        .rev()
        .find(|k| k.algorithm == algorithm && k.domain.eq_ignore_ascii_case(domain))
}

/// A loaded signing key.
enum Loaded {
    Rsa(DkimSigner<RsaKey<Sha256>, mail_auth::dkim::Done>),
    Ed25519(DkimSigner<Ed25519Key, mail_auth::dkim::Done>),
}

fn headers() -> Vec<String> {
    SIGNED_HEADERS
        .iter()
        .chain(OVERSIGNED_HEADERS)
        .map(|h| h.to_string())
        .collect()
}

fn load(key: &KeyInfo) -> Option<Loaded> {
    let r = match key.algorithm {
        Algorithm::Rsa => {
            let der = rustls::pki_types::PrivatePkcs1KeyDer::from(key.private.as_slice());
            RsaKey::<Sha256>::from_key_der(der.into()).map(|k| {
                Loaded::Rsa(
                    DkimSigner::from_key(k)
                        .domain(&key.domain)
                        .selector(&key.selector)
                        .headers(headers())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                )
            })
        }
        Algorithm::Ed25519 => Ed25519Key::from_pkcs8_der(&key.private).map(|k| {
            Loaded::Ed25519(
                DkimSigner::from_key(k)
                    .domain(&key.domain)
                    .selector(&key.selector)
                    .headers(headers())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            )
        }),
    };
    match r {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(domain = %key.domain, selector = %key.selector, error = %e, "dkim: key does not load");
            None
        }
    }
}

/// The keys that sign, per domain, reloaded when the key folder changes
/// (`mailroom dkim generate` on a running server takes effect at the next
/// message, with one stat per message).
struct Cache {
    modified: Option<SystemTime>,
    /// The [`Source::Keys`] generation the cache was made from.
    generation: u64,
    signers: Signers,
    /// The newest RSA key per domain as an ARC sealer: RFC 8617 4.1.3
    /// allows rsa-sha256 only.
    sealers: Sealers,
}

type Sealer = ArcSealer<RsaKey<Sha256>, mail_auth::dkim::Done>;
/// Per domain: its signing keys, its ARC sealer.
type Signers = Arc<Vec<(String, Loaded)>>;
type Sealers = Arc<Vec<(String, Sealer)>>;

/// RFC 8617 4.1.2: the ARC-Message-Signature covers what a DKIM signature
/// would (RFC 6376 5.4.1), and the DKIM signatures themselves, so the
/// next hop sees what we saw.
const ARC_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "DKIM-Signature",
];

fn load_sealer(key: &KeyInfo) -> Option<Sealer> {
    let der = rustls::pki_types::PrivatePkcs1KeyDer::from(key.private.as_slice());
    let k = RsaKey::<Sha256>::from_key_der(der.into()).ok()?;
    Some(
        ArcSealer::from_key(k)
            .domain(key.domain.clone())
            .selector(key.selector.clone())
            .headers(ARC_HEADERS.iter().copied()),
    )
}

/// Where a [`Signer`] finds its keys.
enum Source {
    /// The key folder of a data directory, read again when it changes.
    Dir(PathBuf),
    /// Keys handed over by the caller (the database's on PostgreSQL),
    /// with a generation that [`Signer::set_keys`] advances.
    Keys(Mutex<(u64, Vec<KeyInfo>)>),
}

/// Signs outbound messages with the keys under a data directory, or with
/// keys given to it.
pub struct Signer {
    source: Source,
    cache: Mutex<Cache>,
}

impl Signer {
    pub fn new(data_dir: &Path) -> Signer {
        Signer::from_source(Source::Dir(data_dir.to_path_buf()))
    }

    /// A signer of `keys` (as [`list`] orders them: oldest first), for
    /// keys kept elsewhere than a key folder; [`Signer::set_keys`]
    /// replaces them.
    pub fn with_keys(keys: Vec<KeyInfo>) -> Signer {
        Signer::from_source(Source::Keys(Mutex::new((1, sorted(keys)))))
    }

    /// Replaces the keys of a [`Signer::with_keys`] signer; the next
    /// message is signed with them. No effect on a key-folder signer.
    pub fn set_keys(&self, keys: Vec<KeyInfo>) {
        if let Source::Keys(m) = &self.source
            && let Ok(mut held) = m.lock()
        {
            held.0 += 1;
            held.1 = sorted(keys);
        }
    }

    fn from_source(source: Source) -> Signer {
        Signer {
            source,
            cache: Mutex::new(Cache {
                modified: None,
                generation: 0,
                signers: Arc::new(Vec::new()),
                sealers: Arc::new(Vec::new()),
            }),
        }
    }

    /// The keys and whether they changed since the cache was made.
    fn current_keys(&self, cache: &Cache) -> Option<(Option<SystemTime>, u64, Vec<KeyInfo>)> {
        match &self.source {
            Source::Dir(data_dir) => {
                let modified = std::fs::metadata(data_dir.join(KEY_DIR))
                    .and_then(|m| m.modified())
                    .ok();
                if cache.modified == modified && modified.is_some() {
                    return None;
                }
                let keys = list(data_dir).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "dkim: cannot read the key folder");
                    Vec::new()
                });
                Some((modified, 0, keys))
            }
            Source::Keys(m) => {
                let held = m.lock().ok()?;
                (held.0 != cache.generation).then(|| (None, held.0, held.1.clone()))
            }
        }
    }

    fn signers(&self) -> Signers {
        self.loaded().0
    }

    fn loaded(&self) -> (Signers, Sealers) {
        let Ok(mut cache) = self.cache.lock() else {
            return (Arc::new(Vec::new()), Arc::new(Vec::new()));
        };
        if let Some((modified, generation, keys)) = self.current_keys(&cache) {
            let mut signers = Vec::new();
            let mut sealers = Vec::new();
            for k in keys.iter().filter(|k| signs(&keys, k)) {
                if let Some(l) = load(k) {
                    signers.push((k.domain.clone(), l));
                }
                if k.algorithm == Algorithm::Rsa
                    && let Some(s) = load_sealer(k)
                {
                    sealers.push((k.domain.clone(), s));
                }
            }
            *cache = Cache {
                modified,
                generation,
                signers: Arc::new(signers),
                sealers: Arc::new(sealers),
            };
        }
        (Arc::clone(&cache.signers), Arc::clone(&cache.sealers))
    }

    /// An ARC set (RFC 8617 4.1: ARC-Seal, ARC-Message-Signature,
    /// ARC-Authentication-Results) for a message we forward, sealed by
    /// `domain`'s newest RSA key; None without one, or when the chain
    /// already failed (5.1.2: a chain with cv=fail is not sealed on).
    pub fn arc_seal(
        &self,
        domain: &str,
        message: &AuthenticatedMessage<'_>,
        results: &AuthenticationResults<'_>,
        arc: &ArcOutput<'_>,
    ) -> Option<String> {
        if !arc.can_be_sealed() {
            return None;
        }
        let (_, sealers) = self.loaded();
        let (_, sealer) = sealers
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))?;
        match sealer.seal(message, results, arc) {
            Ok(set) => Some(set.to_header()),
            Err(e) => {
                tracing::warn!(domain = %domain, error = %e, "arc: sealing failed");
                None
            }
        }
    }

    /// The message with DKIM-Signature fields prepended when its From
    /// domain has keys; unchanged otherwise (and when signing fails,
    /// which is logged: unsigned mail is better than lost mail).
    pub fn sign(&self, raw: Vec<u8>) -> Vec<u8> {
        let Some(domain) = from_domain(&raw) else {
            return raw;
        };
        let signers = self.signers();
        let mut fields = String::new();
        for (d, l) in signers
            .iter()
            .filter(|(d, _)| d.eq_ignore_ascii_case(&domain))
        {
            let sig = match l {
                Loaded::Rsa(s) => s.sign(&raw),
                Loaded::Ed25519(s) => s.sign(&raw),
            };
            match sig {
                Ok(sig) => fields.push_str(&sig.to_header()),
                Err(e) => tracing::warn!(domain = %d, error = %e, "dkim: signing failed"),
            }
        }
        if fields.is_empty() {
            return raw;
        }
        let mut out = Vec::with_capacity(fields.len() + raw.len());
        out.extend_from_slice(fields.as_bytes());
        out.extend_from_slice(&raw);
        out
    }
}

/// The domain of the RFC 5322 From address (3.6.2), lower case; None when
/// there is not exactly one From field with one address.
pub fn from_domain(raw: &[u8]) -> Option<String> {
    let msg = mail_auth::AuthenticatedMessage::parse(raw)?;
    match msg.from.as_slice() {
        [one] => one
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()),
        _ => None,
    }
}

/// DER length octets (X.690 8.1.3).
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280
/// 4.1.2.7, rsaEncryption from RFC 8017 A.1): the form DKIM records carry.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    bits.extend(der_len(pkcs1.len() + 1));
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    out.extend(der_len(ALG.len() + bits.len()));
    out.extend_from_slice(ALG);
    out.extend(bits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Alice <alice@Example.TEST>\r\nTo: bob@remote.example\r\nSubject: hi\r\n\r\nhello\r\n";

    #[test]
    fn generate_stores_a_private_key_and_refuses_to_overwrite_it() {
        let dir = tempfile::tempdir().unwrap();
        let k = generate(dir.path(), "Example.test", None, Algorithm::Ed25519).unwrap();
        assert_eq!(k.selector, "mr-ed");
        assert_eq!(k.record_name(), "mr-ed._domainkey.example.test");
        assert!(k.record().starts_with("v=DKIM1; k=ed25519; p="));
        let path = dir.path().join("dkim/example.test+mr-ed.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            generate(dir.path(), "example.test", None, Algorithm::Ed25519),
            Err(KeyError::Exists(_))
        ));
        assert!(matches!(
            generate(dir.path(), "../etc", None, Algorithm::Ed25519),
            Err(KeyError::BadName(_))
        ));
    }

    #[test]
    fn both_algorithms_sign_and_the_newest_key_per_algorithm_wins() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "example.test", None, Algorithm::Rsa).unwrap();
        generate(
            dir.path(),
            "example.test",
            Some("old-ed"),
            Algorithm::Ed25519,
        )
        .unwrap();
        // A later key of the same algorithm: rewrite "created" to be sure
        // it is newer than the one made in the same second.
        let newer = generate(
            dir.path(),
            "example.test",
            Some("new-ed"),
            Algorithm::Ed25519,
        )
        .unwrap();
        let path = dir.path().join("dkim/example.test+new-ed.key");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            &format!("created = {}", newer.created),
            &format!("created = {}", newer.created + 10),
        );
        std::fs::write(&path, text).unwrap();
        let keys = list(dir.path()).unwrap();
        let who: Vec<_> = keys
            .iter()
            .filter(|k| signs(&keys, k))
            .map(|k| k.selector.as_str())
            .collect();
        assert_eq!(who.len(), 2);
        assert!(who.contains(&"mr-rsa") && who.contains(&"new-ed"));

        let signed = String::from_utf8(Signer::new(dir.path()).sign(MSG.to_vec())).unwrap();
        assert_eq!(signed.matches("DKIM-Signature:").count(), 2);
        assert!(signed.contains("a=rsa-sha256; s=mr-rsa; d=example.test; c=relaxed/relaxed"));
        assert!(signed.contains("a=ed25519-sha256; s=new-ed; d=example.test"));
        assert!(signed.ends_with(std::str::from_utf8(MSG).unwrap()));
        // From, To and Subject are listed once more than they occur.
        let h = signed
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let h: Vec<_> = h
            .split(':')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        assert_eq!(h.iter().filter(|n| *n == "from").count(), 2, "{h:?}");
        assert_eq!(h.iter().filter(|n| *n == "subject").count(), 2, "{h:?}");
    }

    #[test]
    fn a_key_made_while_the_signer_runs_signs_the_next_message() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::new(dir.path());
        assert_eq!(s.sign(MSG.to_vec()), MSG);
        generate(dir.path(), "example.test", None, Algorithm::Ed25519).unwrap();
        let one = String::from_utf8(s.sign(MSG.to_vec())).unwrap();
        assert_eq!(one.matches("DKIM-Signature:").count(), 1);
        generate(dir.path(), "example.test", None, Algorithm::Rsa).unwrap();
        let two = String::from_utf8(s.sign(MSG.to_vec())).unwrap();
        assert_eq!(two.matches("DKIM-Signature:").count(), 2);
    }

    #[test]
    fn mail_from_another_domain_is_not_signed() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "other.test", None, Algorithm::Ed25519).unwrap();
        let s = Signer::new(dir.path());
        assert_eq!(s.sign(MSG.to_vec()), MSG);
        assert_eq!(s.sign(b"no header at all".to_vec()), b"no header at all");
    }

    #[test]
    fn rsa_record_is_a_subject_public_key_info() {
        let pkcs1 = vec![0x30, 0x82, 0x01, 0x0a, 0xaa];
        let spki = rsa_spki(&pkcs1);
        assert_eq!(spki.first(), Some(&0x30));
        assert!(spki.ends_with(&pkcs1));
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
    }
}

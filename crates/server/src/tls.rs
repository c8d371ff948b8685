//! TLS for every listener (SPEC 5): rustls with the ring provider, TLS 1.2
//! and 1.3, session tickets, certificates chosen by SNI, and reloading of
//! certificates on SIGHUP without dropping connections.
//!
//! One certificate resolver is shared by the three server configurations
//! (one per ALPN protocol: `imap`, `pop3`, none for SMTP, RFC 7301 and the
//! IANA registry). A reload swaps what the resolver holds, so handshakes
//! after it get the new certificate while sessions already running keep
//! theirs; a file that does not load keeps the old certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// How long a client has to complete a handshake (SPEC 8: every read has
/// a timeout; a stalled handshake must not hold a connection slot).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// File names of the quick start's self-signed certificate, in the data
/// directory.
pub const SELF_SIGNED_CERT: &str = "tls-cert.pem";
pub const SELF_SIGNED_KEY: &str = "tls-key.pem";

/// The application protocol a listener negotiates (RFC 7301; IANA's
/// "TLS Application-Layer Protocol Negotiation (ALPN) Protocol IDs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Imap,
    Pop3,
    /// SMTP has no registered ALPN identifier: none is offered.
    None,
}

/// One certificate with its key, and the names it serves (empty for the
/// default certificate).
#[derive(Debug, Clone)]
pub struct CertSource {
    pub hostnames: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificates in use: the default, and the SNI entries by name.
#[derive(Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    /// Lower-case names; a name starting with `*.` matches one label.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl Certs {
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return Arc::clone(&self.default);
        };
        if let Some(c) = self.by_name.get(&name) {
            return Arc::clone(c);
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(c) = self.by_name.get(&format!("*.{parent}"))
        {
            return Arc::clone(c);
        }
        Arc::clone(&self.default)
    }
}

/// Chooses the certificate for each handshake from what is loaded now.
#[derive(Debug)]
struct Resolver {
    certs: RwLock<Arc<Certs>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = Arc::clone(&self.certs.read().unwrap_or_else(PoisonError::into_inner));
        Some(certs.pick(hello.server_name()))
    }
}

/// What one TLS session negotiated, for the logs and the Received field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// "TLSv1.3" or "TLSv1.2".
    pub version: &'static str,
    /// The IANA name of the cipher suite ("TLS_AES_256_GCM_SHA384").
    pub cipher: String,
    /// Symmetric key bits (Postfix's "(256/256 bits)").
    pub bits: u16,
}

impl TlsInfo {
    fn of(conn: &rustls::ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| s.suite())
            .and_then(|s| s.as_str())
            .unwrap_or("unknown");
        // rustls spells the TLS 1.3 suites "TLS13_..."; IANA says "TLS_...".
        let cipher = match suite.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => suite.to_string(),
        };
        let bits = if cipher.contains("AES_128") { 128 } else { 256 };
        TlsInfo {
            version,
            cipher,
            bits,
        }
    }

    /// Postfix's Received comment: `using TLSv1.3 with cipher X (256/256
    /// bits)`.
    pub fn received_comment(&self) -> String {
        format!(
            "using {} with cipher {} ({}/{} bits)",
            self.version, self.cipher, self.bits, self.bits
        )
    }
}

/// The server's TLS: one acceptor per ALPN protocol over one resolver.
pub struct Tls {
    resolver: Arc<Resolver>,
    sources: RwLock<Vec<CertSource>>,
    imap: TlsAcceptor,
    pop3: TlsAcceptor,
    smtp: TlsAcceptor,
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificates (the first source is the default) and builds
    /// the acceptors.
    pub fn new(sources: Vec<CertSource>, handshake_timeout: Duration) -> Result<Arc<Tls>, String> {
        let certs = load(&sources)?;
        let resolver = Arc::new(Resolver {
            certs: RwLock::new(Arc::new(certs)),
        });
        let acceptor = |alpn: &[&[u8]]| -> Result<TlsAcceptor, String> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| format!("tls: {e}"))?
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
            cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            // Stateless resumption tickets (TLS 1.2 and 1.3); the default
            // in-memory session cache serves clients without tickets.
            cfg.ticketer =
                rustls::crypto::ring::Ticketer::new().map_err(|e| format!("tls tickets: {e}"))?;
            Ok(TlsAcceptor::from(Arc::new(cfg)))
        };
        Ok(Arc::new(Tls {
            imap: acceptor(&[b"imap"])?,
            pop3: acceptor(&[b"pop3"])?,
            smtp: acceptor(&[])?,
            resolver: Arc::clone(&resolver),
            sources: RwLock::new(sources),
            handshake_timeout,
        }))
    }

    pub fn acceptor(&self, alpn: Alpn) -> &TlsAcceptor {
        match alpn {
            Alpn::Imap => &self.imap,
            Alpn::Pop3 => &self.pop3,
            Alpn::None => &self.smtp,
        }
    }

    /// Loads the certificate files again (SIGHUP). On any error the
    /// certificates in use stay, and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let certs = load(&sources)?;
        *self
            .resolver
            .certs
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certs);
        Ok(())
    }

    /// The SHA-256 fingerprint of the default certificate, for the log.
    pub fn fingerprint(&self) -> String {
        let certs = Arc::clone(
            &self
                .resolver
                .certs
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        certs
            .default
            .end_entity_cert()
            .map(|c| fingerprint(c.as_ref()))
            .unwrap_or_default()
    }

    /// Which TLS a finished handshake negotiated.
    pub fn info<S>(stream: &tokio_rustls::server::TlsStream<S>) -> TlsInfo {
        TlsInfo::of(stream.get_ref().1)
    }
}

/// SHA-256 of a DER certificate as colon-separated hex (as `openssl x509
/// -fingerprint -sha256` prints it).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn load(sources: &[CertSource]) -> Result<Certs, String> {
    let mut default = None;
    let mut by_name = HashMap::new();
    for s in sources {
        let key = load_one(s)?;
        if default.is_none() {
            default = Some(Arc::clone(&key));
        }
        for name in &s.hostnames {
            by_name.insert(name.to_ascii_lowercase(), Arc::clone(&key));
        }
    }
    let default = default.ok_or("tls: no certificate configured")?;
    Ok(Certs { default, by_name })
}

fn load_one(s: &CertSource) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert)
        .map_err(|e| format!("tls: cannot read {}: {e}", s.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls: {} is not a PEM certificate: {e}", s.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls: no certificate in {}", s.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| {
        format!(
            "tls: cannot read a private key from {}: {e}",
            s.key.display()
        )
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls: unusable key in {}: {e}", s.key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        format!(
            "tls: the key in {} does not match the certificate in {}: {e}",
            s.key.display(),
            s.cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// The quick start's certificate: made on first start (SPEC 5) with the
/// names a local client uses, and kept in the data directory (0600).
/// Returns its source and whether it was made now.
pub fn self_signed(data_dir: &Path, hostname: &str) -> Result<(CertSource, bool), String> {
    let source = CertSource {
        hostnames: Vec::new(),
        cert: data_dir.join(SELF_SIGNED_CERT),
        key: data_dir.join(SELF_SIGNED_KEY),
    };
    if source.cert.exists() && source.key.exists() {
        return Ok((source, false));
    }
    let mut names = vec![hostname.to_string()];
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            names.push(n.to_string());
        }
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| format!("tls: self-signed: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("tls: self-signed key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("tls: self-signed: {e}"))?;
    write_private(&source.key, key.serialize_pem().as_bytes())?;
    write_private(&source.cert, cert.pem().as_bytes())?;
    Ok((source, true))
}

/// Writes a file readable by the owner alone, atomically (a crash leaves
/// the old file or none, never half a key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("tls: cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (src, made) = self_signed(dir.path(), "mx.example.test").unwrap();
        assert!(made);
        let (_, again) = self_signed(dir.path(), "mx.example.test").unwrap();
        assert!(!again);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&src.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let tls = Tls::new(vec![src], DEFAULT_HANDSHAKE_TIMEOUT).unwrap();
        assert_eq!(tls.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn bad_file_on_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (src, _) = self_signed(dir.path(), "mx.example.test").unwrap();
        let tls = Tls::new(vec![src.clone()], DEFAULT_HANDSHAKE_TIMEOUT).unwrap();
        let before = tls.fingerprint();
        std::fs::write(&src.cert, b"not a certificate").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(err.contains("tls-cert.pem"), "{err}");
        assert_eq!(tls.fingerprint(), before);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (sa, _) = self_signed(a.path(), "a.test").unwrap();
        let (sb, _) = self_signed(b.path(), "b.test").unwrap();
        let mixed = CertSource {
            hostnames: vec![],
            cert: sa.cert,
            key: sb.key,
        };
        let err = Tls::new(vec![mixed], DEFAULT_HANDSHAKE_TIMEOUT).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |sub: &str, host: &str| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            self_signed(&d, host).unwrap().0
        };
        let default = mk("d", "mx.example.test");
        let mut other = mk("o", "mail.other.test");
        other.hostnames = vec!["mail.other.test".into()];
        let mut wild = mk("w", "x.wild.test");
        wild.hostnames = vec!["*.wild.test".into()];
        let certs = load(&[default, other, wild]).unwrap();
        let fp = |c: Arc<CertifiedKey>| fingerprint(c.end_entity_cert().unwrap().as_ref());
        let d = fp(Arc::clone(&certs.default));
        assert_eq!(fp(certs.pick(None)), d);
        assert_eq!(fp(certs.pick(Some("unknown.test"))), d);
        assert_ne!(fp(certs.pick(Some("MAIL.other.test"))), d);
        let w = fp(certs.pick(Some("a.wild.test")));
        assert_ne!(w, d);
        assert_eq!(fp(certs.pick(Some("a.b.wild.test"))), d);
    }
}

//! TLS to the database: tokio-postgres's `MakeTlsConnect`/`TlsConnect`
//! over tokio-rustls with the ring provider, for the pool, the
//! dedicated LISTEN connection and the directory alike.
//!
//! `[store] url` takes libpq's `sslmode` and `sslrootcert` with libpq's
//! meanings (PostgreSQL manual, "SSL Support", table "SSL Mode
//! Descriptions"):
//!
//! | sslmode | encryption | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers it | not checked (checked as `verify-ca` when `sslrootcert` is given) |
//! | `require` | always | the same as `prefer` |
//! | `verify-ca` | always | chains to `sslrootcert` |
//! | `verify-full` | always | chains to `sslrootcert` and names the host |
//!
//! tokio-postgres parses only `disable`, `prefer` and `require` and knows
//! no `sslrootcert`, so [`parse_url`] takes both out of the URL before
//! tokio-postgres parses the rest, and the verifier here does the
//! checking. `sslrootcert` names a PEM file (relative paths are from the
//! working directory, as with libpq); libpq's default
//! `~/.postgresql/root.crt` is not read: a verifying mode names its file.
//!
//! Channel binding (RFC 5929 4.1 `tls-server-end-point`, used by
//! SCRAM-SHA-256-PLUS, RFC 7677/5802): the hash of the server's
//! certificate with the hash of its signature algorithm (SHA-256 for
//! MD5 and SHA-1), so that a man in the middle of an unverified TLS
//! session cannot relay the SCRAM exchange.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use store::StoreError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's "allow" tries plaintext first: a downgrade we do
            // not offer.
            other => {
                return Err(StoreError::Invalid(format!(
                    "store.url: sslmode={other}: must be disable, prefer, require, verify-ca \
                     or verify-full"
                )));
            }
        })
    }

    /// What tokio-postgres is told: whether TLS is tried and whether it
    /// is required (the verification is ours).
    fn driver(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// The connection settings and the TLS connector of one `[store] url`.
#[derive(Clone)]
pub(crate) struct PgConnect {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustls,
}

impl PgConnect {
    /// One connection outside any pool (the LISTEN connection, the
    /// migration's reads).
    pub async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, RustlsStream>,
        ),
        tokio_postgres::Error,
    > {
        config.connect(self.tls.clone()).await
    }
}

/// Parses `url` (a `postgres://` URL or libpq's `key=value` form): the
/// driver's settings without `sslmode`/`sslrootcert`, and the connector
/// that applies them.
pub(crate) fn parse_url(url: &str) -> Result<PgConnect, StoreError> {
    let (rest, params) = take_tls_params(url)?;
    let mode = match &params.mode {
        Some(m) => SslMode::parse(m)?,
        None => SslMode::Prefer,
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| StoreError::Invalid(format!("store.url: {e}")))?;
    config.ssl_mode(mode.driver());
    let roots = match &params.root_cert {
        Some(path) => Some(read_roots(path)?),
        None => None,
    };
    let verify = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(StoreError::Invalid(
                "store.url: sslmode=verify-ca and verify-full need sslrootcert=FILE (the PEM \
                 certificate of the CA that signed the server's)"
                    .to_string(),
            ));
        }
        (SslMode::VerifyFull, Some(roots)) => Verify::Full(roots),
        // libpq: with a root certificate, require (and prefer) verify as
        // verify-ca does.
        (_, Some(roots)) => Verify::Ca(roots),
        (_, None) => Verify::Nothing,
    };
    Ok(PgConnect {
        config,
        tls: MakeRustls::new(verify)?,
    })
}

#[derive(Default)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` off `url`, returning the rest.
fn take_tls_params(url: &str) -> Result<(String, TlsParams), StoreError> {
    let mut params = TlsParams::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), params));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => params.mode = Some(percent_decode(value)?),
                "sslrootcert" => params.root_cert = Some(percent_decode(value)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, params));
    }
    // key=value pairs separated by spaces; values of these two keys are
    // taken as they stand (quoted values are left to the driver).
    let mut kept = Vec::new();
    for word in url.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => params.mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => params.root_cert = Some(v.to_string()),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), params))
}

/// RFC 3986 2.1 percent-decoding of a URL query value.
fn percent_decode(value: &str) -> Result<String, StoreError> {
    let bad = || StoreError::Invalid(format!("store.url: bad percent-encoding in {value:?}"));
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn read_roots(path: &str) -> Result<Arc<RootCertStore>, StoreError> {
    let bad = |e: &dyn std::fmt::Display| StoreError::Invalid(format!("sslrootcert {path}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(Arc::new(roots))
}

/// How the server's certificate is checked.
enum Verify {
    Nothing,
    Ca(Arc<RootCertStore>),
    Full(Arc<RootCertStore>),
}

/// The connector factory handed to tokio-postgres and deadpool.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    fn new(verify: Verify) -> Result<MakeRustls, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| StoreError::Invalid(format!("store TLS: {e}")))?;
        let webpki = |roots: Arc<RootCertStore>| {
            WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| StoreError::Invalid(format!("sslrootcert: {e}")))
        };
        let mut config = match verify {
            Verify::Full(roots) => builder
                .with_webpki_verifier(webpki(roots)?)
                .with_no_client_auth(),
            Verify::Ca(roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(roots)?)))
                .with_no_client_auth(),
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(Arc::clone(&provider))))
                .with_no_client_auth(),
        };
        // PostgreSQL 17's direct TLS negotiation (sslnegotiation=direct)
        // requires this ALPN protocol; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Arc::new(config),
        })
    }
}

impl MakeTlsConnect<tokio_postgres::Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // Unix sockets give no host name; TLS is never negotiated there,
        // so a bad name only fails a handshake that is attempted.
        Ok(RustlsConnect {
            config: Arc::clone(&self.config),
            name: ServerName::try_from(domain.to_string()).ok(),
            domain: domain.to_string(),
        })
    }
}

/// One handshake's connector.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: Option<ServerName<'static>>,
    domain: String,
}

impl TlsConnect<tokio_postgres::Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: tokio_postgres::Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{:?} is not a host name to check a certificate for",
                        self.domain
                    ),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS connection to the database.
pub struct RustlsStream(tokio_rustls::client::TlsStream<tokio_postgres::Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| end_point_hash(c.as_ref()))
        {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 4.1: the certificate's hash under its signature algorithm's
/// hash function, SHA-256 in place of MD5 and SHA-1; None for algorithms
/// without one (Ed25519, RSA-PSS), whose sessions then use SCRAM without
/// channel binding, as PostgreSQL's own server does not offer it there.
fn end_point_hash(der: &[u8]) -> Option<Vec<u8>> {
    let algorithm = signature_algorithm_oid(der)?;
    // DER of the OIDs' contents (X.690 8.19).
    const SHA256_LIKE: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], // md5WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], // sha1WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], // sha256WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],             // ecdsa-with-SHA1
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],       // ecdsa-with-SHA256
    ];
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let digest = if SHA256_LIKE.contains(&algorithm) {
        &ring::digest::SHA256
    } else if SHA384.contains(&algorithm) {
        &ring::digest::SHA384
    } else if SHA512.contains(&algorithm) {
        &ring::digest::SHA512
    } else {
        return None;
    };
    Some(ring::digest::digest(digest, der).as_ref().to_vec())
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280 4.1: SEQUENCE
/// { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }).
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _tbs, after_tbs) = der_element(certificate)?;
    let (tag, algorithm, _) = der_element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element (X.690 8.1): its tag, its contents and what follows.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// `verify-ca`: the chain must reach a root of `sslrootcert`; the name in
/// the certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means
        // the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without `sslrootcert`: encryption without checking
/// who the server is (libpq's meaning); the handshake's signatures are
/// still checked, and channel binding protects a SCRAM login.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `err` with its sources: tokio-postgres shows only "db error" or
/// "error performing TLS handshake" in its own message and keeps the
/// reason (the server's FATAL, the certificate check) in the source, which
/// is what an operator needs to read at startup.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn tls_params_leave_the_url_and_keep_other_params() {
        let (rest, p) = take_tls_params(
            "postgres://u:p@db:5432/mail?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/mail?application_name=x");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, p) = take_tls_params("host=db sslmode=require dbname=mail").unwrap();
        assert_eq!(rest, "host=db dbname=mail");
        assert_eq!(p.mode.as_deref(), Some("require"));
        let (rest, _) = take_tls_params("postgres://db/mail?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://db/mail");
    }

    #[test]
    fn verifying_modes_need_a_root_certificate_and_unknown_modes_are_refused() {
        for mode in ["verify-ca", "verify-full"] {
            let e = parse_url(&format!("postgres://db/mail?sslmode={mode}"))
                .err()
                .unwrap();
            assert!(e.to_string().contains("sslrootcert"), "{e}");
        }
        let e = parse_url("postgres://db/mail?sslmode=allow").err().unwrap();
        assert!(e.to_string().contains("sslmode=allow"), "{e}");
        let e = parse_url("postgres://db/mail?sslrootcert=/nonexistent/ca.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert!(percent_decode("%2").is_err());
        assert!(percent_decode("%zz").is_err());
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().as_ref();
        let hash = end_point_hash(der).unwrap();
        assert_eq!(
            hash,
            ring::digest::digest(&ring::digest::SHA384, der).as_ref()
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(end_point_hash(cert.der().as_ref()), None);
        assert_eq!(end_point_hash(&[0x30, 0x82, 0xff]), None);
    }
}

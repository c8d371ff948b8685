//! The SMTP client of outbound delivery (RFC 5321 3, 4): one connection
//! carries several messages for a destination (RSET between), STARTTLS
//! when the server offers it (RFC 3207; opportunistic, unverified, unless
//! the destination requires TLS), SIZE respected (RFC 1870), and per
//! recipient outcomes, so one recipient's 550 does not touch the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto_smtp::{Parsed, Reply, parse_reply};

pub use crate::content::Content;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// RFC 5321 4.5.3.2.1: the initial 220 is waited for 5 minutes.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 4.5.3.2.2-4: MAIL and RCPT 5 minutes, DATA's 354 2 minutes.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 4.5.3.2.6: the reply to the final dot 10 minutes.
pub const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a TCP connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply accepted from a server (many lines of EHLO included).
const MAX_REPLY: usize = 64 * 1024;

/// Why a connection or a command failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Could not connect, the connection broke, or a timeout: retry.
    Network(String),
    /// The server answered a session-level command (greeting, EHLO,
    /// MAIL, DATA) with this reply.
    Reply(u16, String),
    /// TLS was required and could not be had.
    Tls(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Network(e) => write!(f, "network: {e}"),
            ClientError::Reply(code, text) => write!(f, "{code} {text}"),
            ClientError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

/// How a connection uses TLS.
#[derive(Clone, Default)]
pub enum TlsPolicy {
    /// STARTTLS when offered, certificate not verified (RFC 3207 4.1).
    #[default]
    Opportunistic,
    /// TLS is required and the certificate verified against `roots` for
    /// the host name: `implicit` from the first octet (RFC 8314), else
    /// STARTTLS, which the server must offer.
    Verified {
        roots: Arc<rustls::RootCertStore>,
        implicit: bool,
    },
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsPolicy::Opportunistic => f.write_str("Opportunistic"),
            TlsPolicy::Verified { implicit, .. } => write!(f, "Verified(implicit: {implicit})"),
        }
    }
}

pub use rustls::RootCertStore;

/// Trust anchors from a PEM file (a CA bundle, or one self-signed
/// certificate in tests).
pub fn roots_from_pem(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(roots)
}

/// A user name and password for AUTH PLAIN at a smarthost; never printed.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.user)
    }
}

/// What the server's EHLO offered.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    pub starttls: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    /// RFC 3461: the server takes RET, ENVID, NOTIFY and ORCPT.
    pub dsn: bool,
    /// RFC 3030 2: BDAT.
    pub chunking: bool,
    /// RFC 3030 3: BODY=BINARYMIME (only meaningful with CHUNKING).
    pub binarymime: bool,
}

impl Extensions {
    fn of(reply: &Reply) -> Extensions {
        let mut e = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "STARTTLS" => e.starttls = true,
                "PIPELINING" => e.pipelining = true,
                "8BITMIME" => e.eightbitmime = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "DSN" => e.dsn = true,
                "CHUNKING" => e.chunking = true,
                "BINARYMIME" => e.binarymime = true,
                "SIZE" => e.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                _ => {}
            }
        }
        e
    }
}

/// One message to send: its octets (CRLF) and its envelope.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub sender: String,
    pub recipients: Vec<String>,
    /// Whole in memory, or streamed from the store (issue 19).
    pub content: Content,
    /// RFC 3461 ENVID (xtext) and RET, passed on to a DSN server.
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// Per recipient, aligned with `recipients`: NOTIFY and ORCPT.
    pub rcpt_dsn: Vec<(Option<String>, Option<String>)>,
    /// It came with SMTPUTF8 (UTF-8 header fields, RFC 6532): passed on
    /// to a server that offers it.
    pub smtputf8: bool,
}

impl Outgoing {
    /// The RCPT command for recipient `i`, with its RFC 3461 parameters
    /// when the server offers DSN (4.1, 4.2: passed on as received).
    fn rcpt_line(&self, i: usize, rcpt: &str, dsn: bool) -> String {
        let mut line = format!("RCPT TO:<{rcpt}>");
        if let (true, Some((notify, orcpt))) = (dsn, self.rcpt_dsn.get(i)) {
            if let Some(n) = notify {
                line.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = orcpt {
                line.push_str(&format!(" ORCPT={o}"));
            }
        }
        line
    }
}

/// The outcome for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(String),
    /// 4xx or a broken connection: try again later.
    Deferred(String),
    /// 5xx: permanent.
    Failed(String),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open SMTP session to one server.
pub struct Connection {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    pub ext: Extensions,
    pub tls: bool,
    pub peer: String,
}

fn reply_text(r: &Reply) -> String {
    let enhanced = r.enhanced.map(|e| format!("{e} ")).unwrap_or_default();
    format!("{} {enhanced}{}", r.code, r.lines.join(" "))
}

/// A certificate verifier that accepts any certificate: opportunistic
/// STARTTLS (RFC 3207 4.1 leaves the decision to the client; most MX
/// certificates are self-signed or mismatched, and plaintext would be the
/// alternative). Signatures are still checked, so the session is keyed to
/// whoever holds the certificate's key.
#[derive(Debug)]
struct Opportunistic(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn verified_config(
    roots: &Arc<rustls::RootCertStore>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(Arc::clone(roots))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// RFC 4616: `\0user\0password`, base64.
fn base64_plain(user: &str, password: &str) -> String {
    proto_common::encode_plain("", user, password)
}

fn opportunistic_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Opportunistic(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl Connection {
    /// Connects, reads the greeting, says EHLO and starts TLS as `tls`
    /// says (when offered, for the opportunistic policy). AUTH PLAIN with `auth` (RFC 4954) follows, only ever over
    /// verified TLS.
    pub async fn open_with(
        addr: SocketAddr,
        host: &str,
        helo: &str,
        tls: &TlsPolicy,
        auth: Option<&Credentials>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Connection, ClientError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect(addr, source))
            .await
            .map_err(|_| ClientError::Network(format!("connect to {addr} timed out")))?
            .map_err(|e| ClientError::Network(format!("connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Connection {
            stream: Box::new(tcp),
            buf: Vec::new(),
            ext: Extensions::default(),
            tls: false,
            peer: format!("{host}[{}]", addr.ip()),
        };
        let verified = match tls {
            TlsPolicy::Opportunistic => None,
            TlsPolicy::Verified { roots, implicit } => Some((verified_config(roots)?, *implicit)),
        };
        if let Some((cfg, true)) = &verified {
            c.start_tls(host, Arc::clone(cfg)).await?;
        }
        let greeting = c.read_reply(GREETING_TIMEOUT).await?;
        if greeting.code != 220 {
            return Err(ClientError::Reply(greeting.code, reply_text(&greeting)));
        }
        c.ehlo(helo).await?;
        match &verified {
            Some((_, true)) => {}
            Some((cfg, false)) => {
                if !c.ext.starttls {
                    return Err(ClientError::Tls(format!("{host} does not offer STARTTLS")));
                }
                let r = c.command("STARTTLS", COMMAND_TIMEOUT).await?;
                if r.code != 220 {
                    return Err(ClientError::Tls(format!(
                        "STARTTLS refused: {}",
                        reply_text(&r)
                    )));
                }
                c.start_tls(host, Arc::clone(cfg)).await?;
                c.ehlo(helo).await?;
            }
            None if c.ext.starttls => {
                let r = c.command("STARTTLS", COMMAND_TIMEOUT).await?;
                if r.code == 220 {
                    let cfg = opportunistic_config().map_err(ClientError::Tls)?;
                    c.start_tls(host, cfg).await?;
                    c.ehlo(helo).await?;
                }
            }
            None => {}
        }
        if let Some(creds) = auth {
            if verified.is_none() {
                return Err(ClientError::Tls("AUTH needs verified TLS".into()));
            }
            let plain = base64_plain(&creds.user, &creds.password);
            let r = c
                .command(&format!("AUTH PLAIN {plain}"), COMMAND_TIMEOUT)
                .await?;
            if r.code != 235 {
                return Err(ClientError::Reply(r.code, reply_text(&r)));
            }
        }
        Ok(c)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), ClientError> {
        let r = self
            .command(&format!("EHLO {helo}"), COMMAND_TIMEOUT)
            .await?;
        if r.code != 250 {
            return Err(ClientError::Reply(r.code, reply_text(&r)));
        }
        self.ext = Extensions::of(&r);
        Ok(())
    }

    async fn start_tls(
        &mut self,
        host: &str,
        cfg: Arc<rustls::ClientConfig>,
    ) -> Result<(), ClientError> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::from(std::net::Ipv4Addr::LOCALHOST));
        // RFC 3207 4.2: nothing buffered from before the handshake counts.
        self.buf.clear();
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::duplex(1).0));
        let tls = tokio::time::timeout(
            COMMAND_TIMEOUT,
            tokio_rustls::TlsConnector::from(cfg).connect(name, plain),
        )
        .await
        .map_err(|_| ClientError::Tls("handshake timed out".into()))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.stream = Box::new(tls);
        self.tls = true;
        Ok(())
    }

    async fn read_reply(&mut self, limit: Duration) -> Result<Reply, ClientError> {
        let read = async {
            loop {
                match parse_reply(&self.buf) {
                    Ok(Parsed::Complete(r, n)) => {
                        self.buf.drain(..n.min(self.buf.len()));
                        return Ok(r);
                    }
                    Ok(Parsed::Incomplete) => {}
                    Err(e) => return Err(ClientError::Network(format!("bad reply: {e:?}"))),
                }
                if self.buf.len() > MAX_REPLY {
                    return Err(ClientError::Network("reply too long".into()));
                }
                let mut chunk = [0u8; 4096];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| ClientError::Network(e.to_string()))?;
                if n == 0 {
                    return Err(ClientError::Network("connection closed".into()));
                }
                self.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| ClientError::Network("timed out waiting for a reply".into()))?
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let w = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(COMMAND_TIMEOUT, w)
            .await
            .map_err(|_| ClientError::Network("write timed out".into()))?
            .map_err(|e| ClientError::Network(e.to_string()))
    }

    async fn command(&mut self, line: &str, limit: Duration) -> Result<Reply, ClientError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(limit).await
    }

    /// Sends one message; returns an outcome per recipient. A failure of
    /// the session itself (MAIL, DATA, the connection) applies to every
    /// recipient and is returned as the error.
    pub async fn send(&mut self, msg: &Outgoing) -> Result<Vec<Outcome>, ClientError> {
        let scan = msg.content.scan();
        let (eight_bit, binary, len) = (scan.eight_bit, scan.binary(), scan.len);
        let utf8_envelope = !msg.sender.is_ascii() || msg.recipients.iter().any(|r| !r.is_ascii());
        if utf8_envelope && !self.ext.smtputf8 {
            // RFC 6531 3.2: never downgrade an internationalised envelope.
            let why = "554 5.6.9 the next hop does not support SMTPUTF8".to_string();
            return Ok(msg
                .recipients
                .iter()
                .map(|_| Outcome::Failed(why.clone()))
                .collect());
        }
        if eight_bit && !self.ext.eightbitmime {
            // RFC 6152 3: 8-bit data only to a server that offers
            // 8BITMIME; we do not downgrade (RFC 3463 5.6.3).
            let why = "554 5.6.3 the next hop does not support 8BITMIME".to_string();
            return Ok(msg
                .recipients
                .iter()
                .map(|_| Outcome::Failed(why.clone()))
                .collect());
        }
        if binary && !(self.ext.binarymime && self.ext.chunking) {
            // RFC 3030 3: binary content (NULs, bare CR or LF, lines
            // beyond RFC 5321 4.5.3.1.6's 1000 octets) survives only BDAT
            // with BODY=BINARYMIME; DATA would corrupt it and we do not
            // re-encode signed content (RFC 3463 5.6.3).
            let why = "554 5.6.3 the next hop does not support BINARYMIME".to_string();
            return Ok(msg
                .recipients
                .iter()
                .map(|_| Outcome::Failed(why.clone()))
                .collect());
        }
        if let Some(max) = self.ext.size
            && len > max
        {
            let why = format!("552 5.3.4 message larger than the next hop's SIZE {max}");
            return Ok(msg
                .recipients
                .iter()
                .map(|_| Outcome::Failed(why.clone()))
                .collect());
        }
        let mut mail = format!("MAIL FROM:<{}>", msg.sender);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={len}"));
        }
        if binary {
            mail.push_str(" BODY=BINARYMIME");
        } else if eight_bit && self.ext.eightbitmime {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8_envelope || (msg.smtputf8 && self.ext.smtputf8) {
            mail.push_str(" SMTPUTF8");
        }
        // RFC 3461 5.2.1: a DSN server gets the parameters as we got them;
        // one without DSN makes us the last to report (the worker's
        // "relayed" DSN).
        let dsn = self.ext.dsn;
        if dsn {
            if let Some(ret) = &msg.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = &msg.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        // RFC 2920: with PIPELINING, MAIL, every RCPT and DATA go in one
        // write and their replies are read in order.
        let pipelined = self.ext.pipelining;
        if pipelined {
            let mut batch = format!("{mail}\r\n");
            for (i, rcpt) in msg.recipients.iter().enumerate() {
                batch.push_str(&msg.rcpt_line(i, rcpt, dsn));
                batch.push_str("\r\n");
            }
            if !binary {
                batch.push_str("DATA\r\n");
            }
            self.write(batch.as_bytes()).await?;
        } else {
            self.write(format!("{mail}\r\n").as_bytes()).await?;
        }
        let r = self.read_reply(COMMAND_TIMEOUT).await?;
        if r.code != 250 {
            if pipelined {
                // The RCPTs' and DATA's replies follow; DATA cannot have
                // been accepted without a sender.
                for _ in 0..=msg.recipients.len() {
                    let _ = self.read_reply(COMMAND_TIMEOUT).await?;
                }
            }
            let _ = self.command("RSET", COMMAND_TIMEOUT).await;
            return Err(ClientError::Reply(r.code, reply_text(&r)));
        }
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(msg.recipients.len());
        let mut accepted = 0;
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            let r = if pipelined {
                self.read_reply(COMMAND_TIMEOUT).await?
            } else {
                self.command(&msg.rcpt_line(i, rcpt, dsn), COMMAND_TIMEOUT)
                    .await?
            };
            let text = reply_text(&r);
            match r.code {
                250 | 251 => {
                    accepted += 1;
                    outcomes.push(None);
                }
                // RFC 5321 4.5.3.1.10: 452 for too many recipients means
                // "the rest in another transaction": retried, not failed.
                400..=499 => outcomes.push(Some(Outcome::Deferred(text))),
                _ => outcomes.push(Some(Outcome::Failed(text))),
            }
        }
        let data_reply = if pipelined && !binary {
            Some(self.read_reply(COMMAND_TIMEOUT).await?)
        } else {
            None
        };
        if accepted == 0 {
            // RFC 2920 3.1: a DATA the server took anyway gets an empty
            // message, never the real one.
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                self.write(b".\r\n").await?;
                let _ = self.read_reply(DATA_END_TIMEOUT).await?;
            }
            let _ = self.command("RSET", COMMAND_TIMEOUT).await;
            return Ok(outcomes.into_iter().flatten().collect());
        }
        // The octets go out a piece at a time as they are read (from the
        // store for a big message, issue 19); a read that fails leaves the
        // message unfinished and the connection is dropped, so the server
        // never takes a truncated message (RFC 5321 4.1.1.4, RFC 3030 2).
        let mut pieces = msg.content.pieces();
        let r = if binary {
            // One chunk of the length the first pass found.
            self.write(format!("BDAT {len} LAST\r\n").as_bytes())
                .await?;
            while let Some(piece) = pieces.next().await.map_err(store_error)? {
                self.write(piece).await?;
            }
            self.read_reply(DATA_END_TIMEOUT).await?
        } else {
            let r = match data_reply {
                Some(r) => r,
                None => self.command("DATA", COMMAND_TIMEOUT).await?,
            };
            if r.code != 354 {
                let _ = self.command("RSET", COMMAND_TIMEOUT).await;
                return Err(ClientError::Reply(r.code, reply_text(&r)));
            }
            let mut at_line_start = true;
            let mut buf = Vec::with_capacity(WRITE_PIECE + WRITE_PIECE / 64);
            while let Some(piece) = pieces.next().await.map_err(store_error)? {
                buf.clear();
                stuff_piece(piece, &mut at_line_start, &mut buf);
                self.write(&buf).await?;
            }
            self.write(if scan.ends_with_crlf() {
                b".\r\n"
            } else {
                b"\r\n.\r\n"
            })
            .await?;
            self.read_reply(DATA_END_TIMEOUT).await?
        };
        let text = reply_text(&r);
        let end = match r.code {
            200..=299 => Outcome::Delivered(text),
            400..=499 => Outcome::Deferred(text),
            _ => Outcome::Failed(text),
        };
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| end.clone()))
            .collect())
    }

    /// RSET between messages on one connection (RFC 5321 4.1.1.5).
    pub async fn reset(&mut self) -> Result<(), ClientError> {
        let r = self.command("RSET", COMMAND_TIMEOUT).await?;
        if r.code == 250 {
            Ok(())
        } else {
            Err(ClientError::Reply(r.code, reply_text(&r)))
        }
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", Duration::from_secs(10)).await;
    }
}

/// A body that could not be read mid-message: the connection is given up
/// like a broken one, and the message tried again later.
fn store_error(e: store::StoreError) -> ClientError {
    ClientError::Network(format!("reading the message: {e}"))
}

/// Connects from `source` (`[relay] source_address`) when given and of
/// the same family as `addr`.
async fn connect(addr: SocketAddr, source: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// Whether `raw` can only travel as BODY=BINARYMIME (RFC 3030 3); see
/// [`crate::content::Scan::binary`].
pub fn needs_binarymime(raw: &[u8]) -> bool {
    crate::content::Scan::of(raw).binary()
}

/// The message as DATA carries it: lines starting with a dot get another
/// (RFC 5321 4.5.2), a final CRLF if missing, then `.` CRLF.
pub fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64 + 5);
    let mut at_line_start = true;
    stuff_piece(raw, &mut at_line_start, &mut out);
    out.extend_from_slice(data_end(raw));
    out
}

/// Dot-stuffs one piece of a message into `out`; `at_line_start` carries
/// the state from piece to piece.
fn stuff_piece(piece: &[u8], at_line_start: &mut bool, out: &mut Vec<u8>) {
    for &b in piece {
        if *at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        *at_line_start = b == b'\n';
    }
}

/// What follows the stuffed message: a CRLF if its last line is open,
/// then `.` CRLF (RFC 5321 4.1.1.4).
fn data_end(raw: &[u8]) -> &'static [u8] {
    if raw.ends_with(b"\r\n") {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    }
}

/// Octets of a message written at a time: DATA's stuffed copy and
/// BDAT's chunk are never made whole beside the message (issue 19).
const WRITE_PIECE: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_with_a_dot_line() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..c\r\n"),
            b"a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n");
    }

    #[test]
    fn stuffing_in_pieces_is_stuffing_whole() {
        let raw = b"a\r\n.b\r\n..c\r\n.\r\nend";
        for size in 1..raw.len() {
            let mut at_line_start = true;
            let mut out = Vec::new();
            for piece in raw.chunks(size) {
                stuff_piece(piece, &mut at_line_start, &mut out);
            }
            out.extend_from_slice(data_end(raw));
            assert_eq!(out, dot_stuff(raw), "pieces of {size}");
        }
    }

    #[test]
    fn dsn_parameters_go_only_to_a_dsn_server() {
        let m = Outgoing {
            sender: "a@x".into(),
            recipients: vec!["b@y".into(), "c@y".into()],
            content: Content::whole(Vec::new()),
            envid: Some("QQ314159".into()),
            ret: Some("HDRS".into()),
            rcpt_dsn: vec![(Some("SUCCESS,DELAY".into()), Some("rfc822;b+40y".into()))],
            smtputf8: false,
        };
        assert_eq!(
            m.rcpt_line(0, "b@y", true),
            "RCPT TO:<b@y> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40y"
        );
        assert_eq!(m.rcpt_line(0, "b@y", false), "RCPT TO:<b@y>");
        assert_eq!(m.rcpt_line(1, "c@y", true), "RCPT TO:<c@y>");
    }

    #[test]
    fn plain_credentials_are_base64_of_nul_user_nul_password() {
        assert_eq!(
            base64_plain("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn binary_content_is_nul_bare_cr_or_lf_or_an_overlong_line() {
        assert!(!needs_binarymime(b"Subject: x\r\n\r\n8-bit \xc3\xa9\r\n"));
        assert!(needs_binarymime(b"a\r\n\0b\r\n"));
        assert!(needs_binarymime(b"a\nb\r\n"));
        assert!(needs_binarymime(b"a\rb\r\n"));
        // 998 octets plus CRLF is the longest text line; 999 is binary.
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n");
        assert!(!needs_binarymime(&ok));
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n");
        assert!(needs_binarymime(&long));
    }

    #[test]
    fn ehlo_keywords_are_read() {
        let r = Reply::multi(
            250,
            None,
            vec![
                "mx.test".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "STARTTLS".into(),
                "8BITMIME".into(),
                "DSN".into(),
            ],
        );
        let e = Extensions::of(&r);
        assert!(e.starttls && e.pipelining && e.eightbitmime && !e.smtputf8 && e.dsn);
        assert_eq!(e.size, Some(1000));
    }
}

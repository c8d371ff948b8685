//! A DNS server on loopback for mailroom's tests (issue 12): the zone is
//! given in code, and a name can be made to fail with SERVFAIL or never to
//! answer, so routing (RFC 5321 5.1) is tested through real DNS packets
//! over UDP and TCP (RFC 1035 4.2) without touching the network.
//!
//! ```no_run
//! use testdns::{DnsServer, Zone};
//! let mut zone = Zone::new();
//! zone.mx("example.test", 10, "mx1.example.test")
//!     .a("mx1.example.test", "127.0.0.1".parse().unwrap());
//! let dns = DnsServer::start(zone).unwrap();
//! let resolver_addr = dns.addr(); // 127.0.0.1:<port>, UDP and TCP
//! ```
//!
//! Answers follow the zone literally: a name that appears nowhere in the
//! zone is NXDOMAIN; a name that has records, but none of the asked type,
//! is an empty NOERROR answer (NODATA, RFC 2308 2.2). The server is
//! authoritative-looking and does not recurse, follow CNAMEs or add glue.
//!
//! The server runs on its own thread with its own tokio runtime, so sync
//! tests, async tests and tests that spawn the mailroom binary can all use
//! it. Dropping the [`DnsServer`] stops it; it also stops by itself after
//! [`MAX_LIFETIME`], so a leaked server cannot outlive a test run for long.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A server stops by itself this long after it started.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// TTL of every answer; short, since tests change zones.
pub const TTL: u32 = 1;
/// RFC 1035 4.2.1: UDP messages are limited to 512 octets without EDNS;
/// a query bigger than this buffer is not a query we send.
const MAX_UDP: usize = 4096;
/// RFC 1035 4.2.2: a TCP message has a two-octet length prefix.
const MAX_TCP: usize = 65535;
/// An idle TCP connection is closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Queries answered on one TCP connection before it is closed.
const MAX_QUERIES_PER_TCP: usize = 100;
/// Tries to find a port free for both UDP and TCP.
const BIND_TRIES: usize = 20;

/// What the server answers, by lower-cased absolute name.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<(String, RecordType), Vec<RData>>,
    servfail: HashSet<String>,
    silent: HashSet<String>,
}

/// Names compare without case and without the final dot (RFC 1035 2.3.3).
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn name(s: &str) -> Name {
    // Test zones are written by hand; a bad name is a bug in the test.
    Name::from_ascii(format!("{}.", s.trim_end_matches('.')))
        .unwrap_or_else(|e| panic!("testdns: bad name {s:?}: {e}"))
}

impl Zone {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, owner: &str, rtype: RecordType, data: RData) -> &mut Self {
        self.records
            .entry((key(owner), rtype))
            .or_default()
            .push(data);
        self
    }

    /// An MX record: `domain MX preference exchange`.
    pub fn mx(&mut self, domain: &str, preference: u16, exchange: &str) -> &mut Self {
        self.add(
            domain,
            RecordType::MX,
            RData::MX(MX::new(preference, name(exchange))),
        )
    }

    /// RFC 7505 3: the null MX, `domain MX 0 .`.
    pub fn null_mx(&mut self, domain: &str) -> &mut Self {
        self.add(domain, RecordType::MX, RData::MX(MX::new(0, Name::root())))
    }

    pub fn a(&mut self, host: &str, addr: Ipv4Addr) -> &mut Self {
        self.add(host, RecordType::A, RData::A(A(addr)))
    }

    pub fn aaaa(&mut self, host: &str, addr: Ipv6Addr) -> &mut Self {
        self.add(host, RecordType::AAAA, RData::AAAA(AAAA(addr)))
    }

    /// One TXT record (SPF, DKIM and DMARC tests). A text longer than a
    /// character-string's 255 octets (RFC 1035 3.3.14; an RSA DKIM key)
    /// is split into several strings, which readers join (RFC 7208 3.3,
    /// RFC 6376 3.6.2.2).
    pub fn txt(&mut self, owner: &str, text: &str) -> &mut Self {
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(owner, RecordType::TXT, RData::TXT(TXT::new(parts)))
    }

    /// Every query for `name`, of any type, gets SERVFAIL.
    pub fn servfail(&mut self, name: &str) -> &mut Self {
        self.servfail.insert(key(name));
        self
    }

    /// Every query for `name`, of any type, goes unanswered: the client
    /// times out.
    pub fn silent(&mut self, name: &str) -> &mut Self {
        self.silent.insert(key(name));
        self
    }

    fn exists(&self, k: &str) -> bool {
        self.servfail.contains(k)
            || self.silent.contains(k)
            || self.records.keys().any(|(n, _)| n == k)
    }

    /// The response to one query, or None to stay silent.
    fn answer(&self, query: &Message) -> Option<Message> {
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.authoritative = true;
        let q = match (query.metadata.op_code, query.queries.as_slice()) {
            (OpCode::Query, [q]) => q.clone(),
            (OpCode::Query, _) => {
                resp.metadata.response_code = ResponseCode::FormErr;
                return Some(resp);
            }
            _ => {
                resp.metadata.response_code = ResponseCode::NotImp;
                return Some(resp);
            }
        };
        resp.add_query(q.clone());
        let k = key(&q.name().to_ascii());
        if self.silent.contains(&k) {
            return None;
        }
        if self.servfail.contains(&k) {
            resp.metadata.response_code = ResponseCode::ServFail;
            return Some(resp);
        }
        if !self.exists(&k) {
            resp.metadata.response_code = ResponseCode::NXDomain;
            return Some(resp);
        }
        if let Some(datas) = self.records.get(&(k, q.query_type())) {
            for d in datas {
                resp.add_answer(Record::from_rdata(q.name().clone(), TTL, d.clone()));
            }
        }
        Some(resp)
    }
}

/// What the server saw, for tests that assert DNS was (not) used.
#[derive(Debug, Default)]
struct Stats {
    queries: AtomicUsize,
    asked: Mutex<Vec<Asked>>,
}

/// Queries kept in [`DnsServer::asked`]; later ones are only counted.
const MAX_LOGGED: usize = 10_000;

/// One question the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// Lower case, without the final dot.
    pub name: String,
    /// "MX", "A", "AAAA", "TXT"...
    pub rtype: String,
    /// Over TCP (after a truncated UDP answer, RFC 1035 4.2.1).
    pub tcp: bool,
}

impl Stats {
    fn log(&self, msg: &Message, tcp: bool) {
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        for q in &msg.queries {
            if asked.len() < MAX_LOGGED {
                asked.push(Asked {
                    name: key(&q.name().to_ascii()),
                    rtype: q.query_type().to_string(),
                    tcp,
                });
            }
        }
    }
}

/// A running test DNS server on `127.0.0.1:<port>`, UDP and TCP.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stats: Arc<Stats>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds a free loopback port for UDP and TCP and starts serving
    /// `zone`. Works with or without a tokio runtime around the caller.
    pub fn start(zone: Zone) -> io::Result<DnsServer> {
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let zone = Arc::new(Mutex::new(zone));
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (z, s) = (zone.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("testdns {addr}"))
            .spawn(move || rt.block_on(serve(udp, tcp, z, s, stop_rx)))?;
        Ok(DnsServer {
            addr,
            zone,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Where to send queries: the `[relay] resolver` of a test config.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far (answered or not), over UDP and TCP.
    pub fn queries(&self) -> usize {
        self.stats.queries.load(Ordering::SeqCst)
    }

    /// The questions received so far, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.stats
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the zone while the server runs. Resolvers cache answers
    /// for up to [`TTL`] seconds.
    pub fn update(&self, change: impl FnOnce(&mut Zone)) {
        let mut z = self.zone.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut z);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One port, free for UDP and TCP alike: bind UDP on port 0, then TCP on
/// the port it got; another process may hold that TCP port, so try again.
fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("testdns: no free port")))
}

async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    zone: Arc<Mutex<Zone>>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let (Ok(udp), Ok(tcp)) = (
        tokio::net::UdpSocket::from_std(udp),
        tokio::net::TcpListener::from_std(tcp),
    ) else {
        return;
    };
    let udp = Arc::new(udp);
    let deadline = tokio::time::sleep(MAX_LIFETIME);
    tokio::pin!(deadline);
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = stop.changed() => return,
            r = udp.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                stats.queries.fetch_add(1, Ordering::SeqCst);
                if let Some(out) = respond(&zone, &stats, buf.get(..n).unwrap_or_default(), false) {
                    let out = truncate_for_udp(out);
                    let _ = udp.send_to(&out, peer).await;
                }
            }
            r = tcp.accept() => {
                let Ok((stream, _)) = r else { continue };
                tokio::spawn(serve_tcp(stream, zone.clone(), stats.clone()));
            }
        }
    }
}

/// RFC 1035 4.2.1: over UDP without EDNS an answer over 512 octets is
/// truncated (TC), and the client asks again over TCP. We always use the
/// classic limit so the TCP path gets exercised by big answers.
fn truncate_for_udp(out: Vec<u8>) -> Vec<u8> {
    const CLASSIC_UDP: usize = 512;
    if out.len() <= CLASSIC_UDP {
        return out;
    }
    match Message::from_vec(&out) {
        Ok(m) => m.truncate().to_vec().unwrap_or(out),
        Err(_) => out,
    }
}

async fn serve_tcp(mut stream: tokio::net::TcpStream, zone: Arc<Mutex<Zone>>, stats: Arc<Stats>) {
    for _ in 0..MAX_QUERIES_PER_TCP {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = usize::from(u16::from_be_bytes(len));
        let mut msg = vec![0u8; n.min(MAX_TCP)];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        stats.queries.fetch_add(1, Ordering::SeqCst);
        // A silent name keeps the connection open and says nothing.
        let Some(out) = respond(&zone, &stats, &msg, true) else {
            continue;
        };
        let Ok(len) = u16::try_from(out.len()) else {
            return;
        };
        if stream.write_all(&len.to_be_bytes()).await.is_err()
            || stream.write_all(&out).await.is_err()
        {
            return;
        }
    }
}

/// Bytes in, bytes out (or silence). A query that does not parse gets
/// FORMERR when its ID can be read, else nothing.
fn respond(zone: &Mutex<Zone>, stats: &Stats, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let msg = match Message::from_vec(bytes) {
        Ok(m) if m.metadata.message_type == MessageType::Query => m,
        Ok(_) => return None,
        Err(_) => {
            let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
            let err = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
            return err.to_vec().ok();
        }
    };
    stats.log(&msg, tcp);
    let resp = {
        let z = zone.lock().unwrap_or_else(|p| p.into_inner());
        z.answer(&msg)?
    };
    resp.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn ask(zone: &Zone, qname: &str, t: RecordType) -> Option<Message> {
        let mut q = Message::query();
        q.add_query(Query::query(name(qname), t));
        zone.answer(&q)
    }

    fn zone() -> Zone {
        let mut z = Zone::new();
        z.mx("Example.TEST.", 10, "mx.example.test")
            .a("mx.example.test", Ipv4Addr::LOCALHOST)
            .servfail("broken.test")
            .silent("slow.test");
        z
    }

    #[test]
    fn answers_follow_the_zone() {
        let z = zone();
        let r = ask(&z, "example.test", RecordType::MX).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        // NODATA: the name exists, the type does not.
        let r = ask(&z, "EXAMPLE.test", RecordType::A).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        let r = ask(&z, "nowhere.test", RecordType::MX).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = ask(&z, "broken.test", RecordType::A).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(ask(&z, "slow.test", RecordType::MX).is_none());
    }

    #[test]
    fn udp_and_tcp_answer_on_one_port_and_drop_stops_the_server() {
        let dns = DnsServer::start(zone()).unwrap();
        let addr = dns.addr();
        assert!(addr.ip().is_loopback());
        let mut q = Message::query();
        q.add_query(Query::query(name("mx.example.test"), RecordType::A));
        let bytes = q.to_vec().unwrap();

        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(&bytes, addr).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(r.metadata.id, q.metadata.id);
        assert_eq!(r.answers.len(), 1);

        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        t.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
        t.write_all(&bytes).unwrap();
        let mut len = [0u8; 2];
        t.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        t.read_exact(&mut msg).unwrap();
        assert_eq!(Message::from_vec(&msg).unwrap().answers.len(), 1);
        assert_eq!(dns.queries(), 2);
        let asked = dns.asked();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0].name, "mx.example.test");
        assert_eq!(asked[0].rtype, "A");
        assert!(!asked[0].tcp && asked[1].tcp);

        drop(dns);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}

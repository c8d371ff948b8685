//! Authentication checks on inbound mail at the end of DATA: SPF on the
//! HELO and MAIL FROM identities (RFC 7208 2.3, 2.4), DKIM (RFC 6376,
//! RFC 8463), ARC (RFC 8617) and DMARC alignment (RFC 7489 3.1), recorded
//! in one Authentication-Results field (RFC 8601) whose authserv-id is our
//! host name. An authenticated submission gets `auth=pass smtp.auth=`
//! instead (RFC 8601 2.7.4) and no SPF or DMARC check: the client is ours.
//!
//! Policy is off by default (record only); `[checks]` turns on refusals:
//! SPF fail 550 5.7.23 and a DNS error 451 4.7.24 (RFC 7372 3.2), DMARC
//! p=reject failing 550 5.7.26 (RFC 7372, RFC 7489 6.6.3), p=quarantine
//! into Junk, a sender domain with a null MX 550 5.7.27 (RFC 7505 4.2).
//! A valid ARC chain sealed by a `trusted_arc_sealers` domain overrides a
//! DMARC failure (RFC 8617 7.2: the receiver decides whom to trust).
//!
//! DNS answers are cached with their TTL (bounded in entries), and the
//! whole check is bounded in time, so a slow DNS server never holds a
//! session past its timeouts: what did not answer in time is temperror.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult, Error, MX,
    MessageAuthenticator, Parameters, RecordSet, ResolverCache, SpfOutput, SpfResult, Txt,
};
use proto_smtp::Reply;

use super::session::reply;

/// The whole check of one message: RFC 7208 4.6.4 asks SPF to give up
/// after at least 20 seconds; DKIM and DMARC share the bound.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// One DNS query (the resolver tries twice).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Entries per record type in the DNS cache; past it the expired ones go,
/// and if that is not enough the cache starts over.
pub const MAX_CACHE_ENTRIES: usize = 10_000;
/// How long a "no such name" or "no such record" answer is kept when the
/// server's answer carries no SOA to take a TTL from (RFC 2308 5: the SOA
/// minimum is the negative TTL; with an SOA the answer's own TTL applies
/// and this is its floor). RFC 2308 5 advises against caching SOA-less
/// negative answers because caches answering each other could keep them
/// alive for ever; this cache answers nobody, so the concern does not
/// apply, and without it every message from a sender domain that does not
/// exist costs fresh SPF queries (issue 18: a third of the accept path's
/// instructions under `bench/smtp_instructions.sh`).
pub const NEGATIVE_MIN_TTL: Duration = Duration::from_secs(60);

/// `[checks]`.
#[derive(Debug, Clone)]
pub struct ChecksConfig {
    /// SPF fail on MAIL FROM or on HELO (RFC 7208 2.3): 550 5.7.23.
    pub spf_reject: bool,
    /// DMARC fail with p=reject: 550 5.7.26.
    pub dmarc_reject: bool,
    /// DMARC fail with p=quarantine (or p=reject not refused): into Junk.
    pub dmarc_quarantine: bool,
    /// A DNS error in SPF or DMARC: 451 4.7.24, the client retries.
    pub tempfail_on_dns_error: bool,
    /// A sender domain with a null MX (RFC 7505): 550 5.7.27.
    pub null_mx_reject: bool,
    /// Sealers whose valid ARC chain overrides a DMARC failure.
    pub trusted_arc_sealers: Vec<String>,
    /// The DNS server to ask; None: the system's (`[relay] resolver`).
    pub resolver: Option<SocketAddr>,
    pub timeout: Duration,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            spf_reject: false,
            dmarc_reject: false,
            dmarc_quarantine: false,
            tempfail_on_dns_error: false,
            null_mx_reject: false,
            trusted_arc_sealers: Vec::new(),
            resolver: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A TTL cache for one record type.
pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().ok()?;
        map.get(name)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.lock().ok()?.remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= MAX_CACHE_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, valid_until));
    }
}

/// RFC 7208 4.6.4: more than two DNS lookups of an SPF evaluation's
/// terms that find nothing (NXDOMAIN or no records) are a permerror.
pub const MAX_VOID_LOOKUPS: u32 = 2;

/// A cache that counts what an evaluation looked up through it: a miss
/// is a DNS query, an insert its answer. mail-auth does not count void
/// lookups, and it caches every answer it gets and no error, so for one
/// evaluation misses minus inserts are the queries that found nothing.
struct Counting<'a, K, V> {
    inner: &'a TtlCache<K, V>,
    misses: AtomicU32,
    inserts: AtomicU32,
}

impl<'a, K, V> Counting<'a, K, V> {
    fn new(inner: &'a TtlCache<K, V>) -> Self {
        Counting {
            inner,
            misses: AtomicU32::new(0),
            inserts: AtomicU32::new(0),
        }
    }

    fn misses(&self) -> u32 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Queries that found nothing (or failed: then the result is
    /// temperror, which the limit leaves alone).
    fn unanswered(&self) -> u32 {
        self.misses()
            .saturating_sub(self.inserts.load(Ordering::Relaxed))
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Counting<'_, K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hit = self.inner.get(name);
        if hit.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(name)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.inner.insert(key, value, valid_until);
    }
}

/// One SPF evaluation's view of the caches, counting its void lookups.
struct SpfLookups<'a> {
    txt: Counting<'a, Box<str>, Txt>,
    mx: Counting<'a, Box<str>, RecordSet<MX>>,
    ipv4: Counting<'a, Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Counting<'a, Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Counting<'a, IpAddr, RecordSet<Box<str>>>,
}

type Counted<'x, 'a, P> = Parameters<
    'x,
    P,
    Counting<'a, Box<str>, Txt>,
    Counting<'a, Box<str>, RecordSet<MX>>,
    Counting<'a, Box<str>, RecordSet<Ipv4Addr>>,
    Counting<'a, Box<str>, RecordSet<Ipv6Addr>>,
    Counting<'a, IpAddr, RecordSet<Box<str>>>,
>;

impl<'a> SpfLookups<'a> {
    fn new(c: &'a Caches) -> Self {
        SpfLookups {
            txt: Counting::new(&c.txt),
            mx: Counting::new(&c.mx),
            ipv4: Counting::new(&c.ipv4),
            ipv6: Counting::new(&c.ipv6),
            ptr: Counting::new(&c.ptr),
        }
    }

    fn params<P>(&self, p: P) -> Counted<'_, 'a, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }

    /// The void lookups of an evaluation for a client at `ip`. `a` and
    /// `mx` ask only the client's address family; `exists` asks the
    /// other family's cache too and never caches its answer, so each
    /// miss there is an `exists`, whose same-family miss is taken out:
    /// `exists` terms are not counted (their answer is not visible
    /// here), so the limit can only be lenient, never refuse wrongly.
    fn voids(&self, ip: IpAddr) -> u32 {
        let (same, other) = match ip {
            IpAddr::V4(_) => (&self.ipv4 as &dyn Unanswered, &self.ipv6 as &dyn Unanswered),
            IpAddr::V6(_) => (&self.ipv6 as &dyn Unanswered, &self.ipv4 as &dyn Unanswered),
        };
        let addresses = same.unanswered().saturating_sub(other.misses());
        self.txt.unanswered() + self.mx.unanswered() + self.ptr.unanswered() + addresses
    }
}

/// The two counts of a [`Counting`] cache, whatever its types.
trait Unanswered {
    fn misses(&self) -> u32;
    fn unanswered(&self) -> u32;
}

impl<K, V> Unanswered for Counting<'_, K, V> {
    fn misses(&self) -> u32 {
        Counting::misses(self)
    }
    fn unanswered(&self) -> u32 {
        Counting::unanswered(self)
    }
}

#[derive(Default)]
struct Caches {
    txt: TtlCache<Box<str>, Txt>,
    mx: TtlCache<Box<str>, RecordSet<MX>>,
    ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    /// A verifier's input with every cache attached.
    fn params<P>(&self, p: P) -> Cached<'_, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

/// What the SPF results mean for the policy.
#[derive(Debug, Clone, Copy)]
struct Spf {
    /// MAIL FROM or HELO failed.
    fail: bool,
    /// MAIL FROM could not be checked (DNS).
    temp: bool,
}

/// What the session knows about the message.
pub struct Input<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// The reverse-path; "" for `<>`.
    pub sender: &'a str,
    pub message: &'a [u8],
    /// The rest of a spooled message (issue 19): `message` is then its
    /// header section, and the body hashes are computed over this in one
    /// streamed pass ([`delivery::bodyhash`]).
    pub body: Option<&'a store::Spooled>,
    /// Some recipient is remote (a 251 forward, an alias or list member
    /// elsewhere): the relayed copy gets an ARC set.
    pub relaying: bool,
}

/// The outcome: the field to add (CRLF-terminated), and whether the
/// message goes to Junk; or the refusal.
#[derive(Debug)]
pub enum Verdict {
    Accept {
        header: String,
        junk: bool,
        /// The ARC set for the relayed copy (RFC 8617 4.1), CRLF-terminated.
        arc: Option<String>,
    },
    Reject(Reply),
}

pub struct Checks {
    cfg: ChecksConfig,
    hostname: String,
    auth: MessageAuthenticator,
    caches: Caches,
    /// Seals forwarded mail with this domain's key (the primary domain).
    sealer: Option<(Arc<delivery::dkim::Signer>, String)>,
}

impl Checks {
    pub fn new(cfg: ChecksConfig, hostname: &str) -> Result<Checks, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 2;
        opts.negative_min_ttl = Some(NEGATIVE_MIN_TTL);
        let auth = match cfg.resolver {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts)
            }
            None => {
                let (config, mut sys) =
                    mail_auth::hickory_resolver::system_conf::read_system_conf()
                        .map_err(|e| format!("system resolver: {e}"))?;
                sys.timeout = QUERY_TIMEOUT;
                sys.attempts = 2;
                sys.negative_min_ttl = Some(NEGATIVE_MIN_TTL);
                MessageAuthenticator::new(config, sys)
            }
        }
        .map_err(|e| format!("resolver: {e}"))?;
        Ok(Checks {
            cfg,
            hostname: hostname.to_string(),
            auth,
            caches: Caches::default(),
            sealer: None,
        })
    }

    /// Forwarded mail gets an ARC set sealed by `domain`'s RSA key, so the
    /// final receiver can trust our results (RFC 8617 1).
    pub fn with_arc_sealer(mut self, signer: Arc<delivery::dkim::Signer>, domain: &str) -> Checks {
        self.sealer = Some((signer, domain.to_string()));
        self
    }

    /// The field for an authenticated submission (RFC 8601 2.7.4).
    pub fn submission_header(hostname: &str, user: &str) -> String {
        let user: String = user
            .chars()
            .filter(|c| !c.is_control() && !c.is_whitespace() && *c != ';')
            .collect();
        format!("Authentication-Results: {hostname};\r\n\tauth=pass smtp.auth={user}\r\n")
    }

    /// Runs every check within the configured time.
    pub async fn check(&self, input: &Input<'_>) -> Verdict {
        match tokio::time::timeout(self.cfg.timeout, self.check_untimed(input)).await {
            Ok(v) => v,
            Err(_) => {
                tracing::info!(ip = %input.ip, "checks: no DNS answer in time");
                if self.cfg.tempfail_on_dns_error {
                    return Verdict::Reject(dns_error());
                }
                let header = format!(
                    "Authentication-Results: {};\r\n\tspf=temperror (DNS timeout);\r\n\tdkim=temperror (DNS timeout);\r\n\tdmarc=temperror (DNS timeout)\r\n",
                    self.hostname
                );
                Verdict::Accept {
                    header,
                    junk: false,
                    arc: None,
                }
            }
        }
    }

    /// One SPF evaluation with RFC 7208 4.6.4's void lookup limit, which
    /// mail-auth leaves out: past [`MAX_VOID_LOOKUPS`] a result that
    /// depended on those lookups is a permerror. temperror, permerror and
    /// none stay as they are.
    async fn verify_spf(&self, p: SpfParameters<'_>, ip: IpAddr) -> SpfOutput {
        let lookups = SpfLookups::new(&self.caches);
        let out = self.auth.verify_spf(lookups.params(p)).await;
        let decided = matches!(
            out.result(),
            SpfResult::Pass | SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral
        );
        let voids = lookups.voids(ip);
        if decided && voids > MAX_VOID_LOOKUPS {
            tracing::debug!(voids, "spf: void lookup limit");
            return out.with_result(SpfResult::PermError);
        }
        out
    }

    async fn check_untimed(&self, input: &Input<'_>) -> Verdict {
        let c = &self.caches;
        let helo = helo_domain(input.helo);
        let sender_domain = input
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());

        // RFC 7505 4.2: a domain that says it takes no mail cannot be a
        // sender; asked before anything else, it saves the rest.
        if self.cfg.null_mx_reject
            && let Some(d) = &sender_domain
            && let Ok(mx) = self.auth.mx_lookup(d.as_str(), Some(&c.mx)).await
            && is_null_mx(&mx.rrset)
        {
            return Verdict::Reject(reply(550, 5, 7, 27, "Sender address has null MX"));
        }

        // SPF: HELO first (RFC 7208 2.3), then MAIL FROM, or the HELO
        // result for the null reverse-path (2.4: postmaster@HELO).
        let spf_helo = match helo {
            Some(h) => Some(
                self.verify_spf(
                    SpfParameters::verify_ehlo(input.ip, h, &self.hostname),
                    input.ip,
                )
                .await,
            ),
            None => None,
        };
        let helo_name = helo.unwrap_or(input.helo);
        let spf_mail = if input.sender.is_empty() {
            spf_helo.clone()
        } else {
            Some(
                self.verify_spf(
                    SpfParameters::verify_mail_from(
                        input.ip,
                        helo_name,
                        &self.hostname,
                        input.sender,
                    ),
                    input.ip,
                )
                .await,
            )
        };
        let spf_mail = spf_mail.unwrap_or_else(|| SpfOutput::new(String::new()));
        // RFC 7208 2.3: a HELO that fails may be refused like a MAIL FROM.
        let spf = Spf {
            fail: spf_mail.result() == SpfResult::Fail
                || spf_helo
                    .as_ref()
                    .is_some_and(|h| h.result() == SpfResult::Fail),
            temp: spf_mail.result() == SpfResult::TempError,
        };

        let sealing = self.sealer.is_some() && input.relaying;
        let (parsed, verifiable) = match input.body {
            None => (AuthenticatedMessage::parse(input.message), true),
            Some(body) => match self.parse_spooled(input.message, body, sealing).await {
                Some(m) => (Some(m), true),
                None => (None, false),
            },
        };
        let Some(message) = parsed else {
            // Nothing to verify a signature or a From domain in, or a
            // spooled message whose header section did not fit in memory
            // or whose spool file could not be read: SPF only, and DKIM
            // recorded as not checked (RFC 8601 2.7.1 `policy`: signed or
            // not, the signatures were not acceptable to us to evaluate).
            // Without a DKIM result DMARC is not evaluated either, so it
            // refuses nothing.
            let mut ar = AuthenticationResults::new(&self.hostname);
            if let Some(h) = &spf_helo {
                ar = ar.with_spf_ehlo_result(h, input.ip, helo_name);
            }
            ar = ar.with_spf_mailfrom_result(&spf_mail, input.ip, input.sender, helo_name);
            let mut header = fold(&ar.to_header());
            if !verifiable {
                header = not_verified(&header);
            }
            return self.decide(header, spf, None, false);
        };
        let dkim = body_hash_is_fail(&message, self.auth.verify_dkim(c.params(&message)).await);
        let arc = self.auth.verify_arc(c.params(&message)).await;
        // RFC 8617 5.2 step 6: the newest ARC-Message-Signature not
        // validating (its body hash) makes the chain fail; mail-auth says
        // neutral.
        let arc_body = Error::Arc(mail_auth::arc::ArcError::FailedBodyHashMatch);
        let arc = if *arc.result() == DkimResult::Neutral(arc_body.clone()) {
            arc.with_result(DkimResult::Fail(arc_body))
        } else {
            arc
        };
        // RFC 7489 4.1 / 3.1.2: SPF's domain is the MAIL FROM's, or HELO's
        // for the null reverse-path.
        let mail_from_domain = sender_domain.as_deref().unwrap_or(helo_name);
        let dmarc = self
            .auth
            .verify_dmarc(c.params(DmarcParameters::new(
                &message,
                &dkim,
                mail_from_domain,
                &spf_mail,
            )))
            .await;
        let header_from = message
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map_or(String::new(), |(_, d)| d.to_string());

        let mut ar = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, &header_from)
            .with_arc_result(&arc, input.ip);
        if let Some(h) = &spf_helo {
            ar = ar.with_spf_ehlo_result(h, input.ip, helo_name);
        }
        ar = ar.with_spf_mailfrom_result(&spf_mail, input.ip, input.sender, helo_name);
        if !dmarc.domain().is_empty() {
            ar = ar.with_dmarc_result(&dmarc);
        }
        let arc_set = match &self.sealer {
            Some((signer, domain)) if sealing => signer.arc_seal(domain, &message, &ar, &arc),
            _ => None,
        };

        let dmarc_failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        let arc_trusted = *arc.result() == DkimResult::Pass
            && arc
                .sets()
                .iter()
                .max_by_key(|s| s.seal.header.i)
                .is_some_and(|s| {
                    self.cfg
                        .trusted_arc_sealers
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(&s.seal.header.d))
                });
        let dmarc_temp = matches!(dmarc.result(), DmarcResult::TempError(_));
        let policy = if dmarc_failed && !arc_trusted {
            Some(dmarc.policy())
        } else {
            None
        };
        let mut verdict = self.decide(fold(&ar.to_header()), spf, policy, dmarc_temp);
        if let Verdict::Accept { arc, .. } = &mut verdict {
            *arc = arc_set;
        }
        verdict
    }

    /// The header section of a spooled message, parsed, with the body
    /// hashes its DKIM and ARC signatures need (and the sealer's when
    /// `sealing`) computed over `body` in one pass off the async threads,
    /// so that it verifies exactly as the whole message would. None when
    /// `head` is not a complete header section (it is cut at
    /// [`crate::spool::MAX_SPOOLED_HEAD`]) or the spool file fails.
    async fn parse_spooled<'x>(
        &self,
        head: &'x [u8],
        body: &store::Spooled,
        sealing: bool,
    ) -> Option<AuthenticatedMessage<'x>> {
        let mut message = AuthenticatedMessage::parse(head)?;
        if !head.ends_with(b"\r\n\r\n") || message.body_offset() != head.len() {
            tracing::info!("checks: header section of a spooled message too long to verify");
            return None;
        }
        let mut keys = delivery::bodyhash::needed(&message);
        if sealing {
            keys.push(delivery::bodyhash::SEAL_KEY);
        }
        if keys.is_empty() {
            return Some(message);
        }
        let body = body.clone();
        let hashed =
            tokio::task::spawn_blocking(move || delivery::bodyhash::of_spooled(&keys, &body)).await;
        match hashed {
            Ok(Ok(hashes)) => {
                delivery::bodyhash::install(&mut message, hashes);
                Some(message)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "checks: cannot read the spooled body");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "checks: body hashing failed");
                None
            }
        }
    }

    /// Applies `[checks]` to the results. `dmarc_policy` is the policy of
    /// a DMARC failure not overridden by a trusted ARC chain.
    fn decide(
        &self,
        header: String,
        spf: Spf,
        dmarc_policy: Option<Policy>,
        dmarc_temp: bool,
    ) -> Verdict {
        let cfg = &self.cfg;
        if cfg.spf_reject && spf.fail {
            return Verdict::Reject(reply(550, 5, 7, 23, "SPF validation failed"));
        }
        if cfg.tempfail_on_dns_error && (spf.temp || dmarc_temp) {
            return Verdict::Reject(dns_error());
        }
        if cfg.dmarc_reject && dmarc_policy == Some(Policy::Reject) {
            return Verdict::Reject(reply(
                550,
                5,
                7,
                26,
                "DMARC policy of the From domain rejects this message",
            ));
        }
        let junk = cfg.dmarc_quarantine
            && matches!(dmarc_policy, Some(Policy::Quarantine | Policy::Reject));
        Verdict::Accept {
            header,
            junk,
            arc: None,
        }
    }
}

impl super::session::Session {
    /// The checks for one message, or None without `[checks]` (unit
    /// tests): authenticated sessions get `auth=pass`, others every check.
    /// The message is handed back unchanged.
    ///
    /// The checks run in a task of their own: the parsers and verifiers
    /// of mail-auth see raw network input, and should one of them panic,
    /// the message is still accepted or refused by the rules (recorded as
    /// temperror) rather than the session dying with it.
    pub(crate) async fn auth_checks(
        &self,
        sender: &str,
        message: Vec<u8>,
        relaying: bool,
        body: Option<store::Spooled>,
    ) -> (Vec<u8>, Option<Verdict>) {
        let Some(checks) = self.ctx.checks.as_ref() else {
            return (message, None);
        };
        if let Some(user) = &self.authenticated {
            let header = Checks::submission_header(&checks.hostname, user);
            let v = Verdict::Accept {
                header,
                junk: false,
                arc: None,
            };
            return (message, Some(v));
        }
        let checks = Arc::clone(checks);
        let message = Arc::new(message);
        let (ip, shared) = (self.peer.ip(), Arc::clone(&message));
        let helo = self.helo.as_ref().map_or(String::new(), |h| h.name.clone());
        let sender = sender.to_string();
        let task = tokio::spawn(async move {
            let input = Input {
                ip,
                helo: &helo,
                sender: &sender,
                message: &shared,
                body: body.as_ref(),
                relaying,
            };
            checks.check(&input).await
        });
        let verdict = match task.await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(ip = %ip, error = %e, "checks: failed; recorded as temperror");
                let checks = self.ctx.checks.as_ref();
                let host = checks.map_or("", |c| c.hostname.as_str());
                Verdict::Accept {
                    header: format!(
                        "Authentication-Results: {host};\r\n\tspf=temperror;\r\n\tdkim=temperror\r\n"
                    ),
                    junk: false,
                    arc: None,
                }
            }
        };
        // The task has ended, so this is the only reference left.
        let message = Arc::try_unwrap(message).unwrap_or_else(|m| m.as_ref().clone());
        (message, Some(verdict))
    }
}

/// RFC 6376 3.7: a body hash that does not match is PERMFAIL (body hash
/// did not verify), which RFC 8601 2.7.1 records as `fail`; mail-auth
/// says `neutral`.
fn body_hash_is_fail<'x>(
    message: &'x AuthenticatedMessage<'x>,
    outputs: Vec<DkimOutput<'x>>,
) -> Vec<DkimOutput<'x>> {
    let body_hash = Error::Dkim(DkimError::FailedBodyHashMatch);
    outputs
        .into_iter()
        .map(|o| {
            if *o.result() != DkimResult::Neutral(body_hash.clone()) {
                return o;
            }
            let fail = DkimOutput::fail(body_hash.clone());
            match message
                .dkim_headers
                .iter()
                .find(|h| Some(&h.header) == o.signature())
            {
                Some(h) => fail.with_signature(&h.header),
                None => fail,
            }
        })
        .collect()
}

/// RFC 5322 2.1.1: lines SHOULD be at most 78 characters. mail-auth
/// writes one line per method, comments included, which runs past that;
/// long lines are folded at spaces (2.2.3), so readers that refold long
/// lines (Python's email package) leave ours as they are.
pub const MAX_LINE: usize = 78;

fn fold(header: &str) -> String {
    let mut out = String::with_capacity(header.len() + 16);
    for line in header.split_terminator("\r\n") {
        let mut rest = line;
        while rest.len() > MAX_LINE {
            // The last space that keeps this line within the limit, not
            // the leading one of a continuation line.
            let cut = rest
                .char_indices()
                .take_while(|(i, _)| *i <= MAX_LINE)
                .filter(|(i, c)| *i > 1 && *c == ' ')
                .map(|(i, _)| i)
                .last();
            let Some(cut) = cut else { break };
            let (head, tail) = rest.split_at(cut);
            out.push_str(head);
            out.push_str("\r\n\t");
            rest = tail.trim_start_matches(' ');
        }
        out.push_str(rest);
        out.push_str("\r\n");
    }
    out
}

/// Adds `dkim=policy` to a results field for a spooled message whose
/// signatures could not be verified (its header section is over
/// [`crate::spool::MAX_SPOOLED_HEAD`], or its spool file failed).
fn not_verified(header: &str) -> String {
    let trimmed = header.trim_end_matches("\r\n");
    format!("{trimmed};\r\n\tdkim=policy (header section too long or unreadable: not verified)\r\n")
}

/// RFC 7372 3.2: X.7.24, SPF (or another DNS-based check) could not finish.
fn dns_error() -> Reply {
    reply(
        451,
        4,
        7,
        24,
        "Temporary DNS error in authentication checks, try again later",
    )
}

/// The HELO name when it is a domain SPF can check (RFC 7208 2.3: not an
/// address literal, and fully qualified).
fn helo_domain(helo: &str) -> Option<&str> {
    let h = helo.trim_end_matches('.');
    if h.starts_with('[') || h.parse::<IpAddr>().is_ok() || !h.contains('.') {
        None
    } else {
        Some(h)
    }
}

/// RFC 7505 3: one MX record, preference 0, exchange the root.
fn is_null_mx(rrset: &[MX]) -> bool {
    match rrset {
        [only] => {
            only.preference == 0
                && only
                    .exchanges
                    .iter()
                    .all(|e| e.is_empty() || e.as_ref() == ".")
        }
        _ => false,
    }
}

/// Puts `header` directly below Return-Path on the local copy (RFC 8601
/// 5: above the Received field of this hop, so that a reader sees it
/// belongs to us); relayed copies are left alone.
pub fn insert_results(delivery: &mut store::Delivery, header: &str) {
    let Some(raw) = delivery.local_raw.as_mut() else {
        return;
    };
    let at = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    raw.splice(at..at, header.bytes());
}

/// The relayed copy gets the ARC set on top (RFC 8617 4.1: a set is
/// added above the header fields it covers).
pub fn seal_relayed(delivery: &mut store::Delivery, set: &str) {
    if let Some(out) = delivery.outbound.as_mut() {
        out.raw.splice(0..0, set.bytes());
    }
}

/// Local copies go to Junk (RFC 6154) rather than INBOX.
pub fn into_junk(delivery: &mut store::Delivery) {
    for t in &mut delivery.local {
        t.mailbox = "Junk".to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_folded_at_spaces() {
        let long = format!(
            "Authentication-Results: mx;\r\n\tspf=none (mx: {} x) smtp.helo=h\r\n",
            "word ".repeat(30)
        );
        let folded = fold(&long);
        assert!(
            folded.split("\r\n").all(|l| l.len() <= MAX_LINE),
            "{folded}"
        );
        let unfolded: String = folded.replace("\r\n\t", " ");
        assert_eq!(unfolded.replace("\r\n ", " "), long.replace("\r\n\t", " "));
        assert!(folded.ends_with("\r\n"));
    }

    #[test]
    fn helo_literals_and_bare_names_are_not_checked() {
        assert_eq!(helo_domain("[192.0.2.1]"), None);
        assert_eq!(helo_domain("192.0.2.1"), None);
        assert_eq!(helo_domain("localhost"), None);
        assert_eq!(helo_domain("mx.example.org."), Some("mx.example.org"));
    }

    #[test]
    fn the_results_go_below_return_path() {
        let mut d = delivery::build(
            b"Subject: s\r\n\r\nx\r\n",
            "a@b.example",
            Some("Received: x\r\n"),
            &delivery::Targets {
                local: vec!["alice@example.test".into()],
                remote: vec![],
            },
            0,
            &delivery::Envelope::default(),
        )
        .expect("delivery");
        insert_results(&mut d, "Authentication-Results: mx; none\r\n");
        assert_eq!(
            d.local_raw.as_deref(),
            Some(
                &b"Return-Path: <a@b.example>\r\nAuthentication-Results: mx; none\r\nReceived: x\r\nSubject: s\r\n\r\nx\r\n"[..]
            )
        );
    }

    #[test]
    fn a_submission_user_cannot_break_the_field() {
        let h = Checks::submission_header("mx.test", "a;b\r\nX: y@example.test");
        assert_eq!(
            h,
            "Authentication-Results: mx.test;\r\n\tauth=pass smtp.auth=abX:y@example.test\r\n"
        );
    }
}

//! Routing for outbound mail (RFC 5321 5.1): which hosts to try for a
//! domain, in which order, at which addresses.
//!
//! - A domain's MX records are tried by preference, lowest first; hosts of
//!   one preference are shuffled on every call so that load spreads over
//!   them (RFC 5321 5.1: "the SMTP client SHOULD randomize them"). Each
//!   host comes with its A then AAAA addresses (IPv4 first: an AAAA record
//!   without a working IPv6 path is still common, and the worker falls over
//!   to the next address anyway). A host listed twice keeps its lowest
//!   preference; at most [`MAX_MX_HOSTS`] hosts are resolved.
//! - No MX records (NOERROR without MX answers): the domain itself, as an
//!   implicit MX of preference 0 (RFC 5321 5.1).
//! - A null MX, `MX 0 .` (RFC 7505 3), means the domain takes no mail:
//!   [`RouteError::NullMx`], permanent (5.1.10; RFC 7505 4.2 gives the
//!   reply code 556). An MX set that mixes "." with real hosts is a
//!   misconfiguration; the "." entries are skipped and the hosts used.
//! - NXDOMAIN, or neither MX nor A/AAAA, or MX hosts none of which has an
//!   address: [`RouteError::NoSuchDomain`], permanent (5.1.2, RFC 3463:
//!   "bad destination system address").
//! - Timeouts, SERVFAIL, REFUSED and network errors:
//!   [`RouteError::Temporary`], the message is retried (4.4.3, RFC 3463:
//!   "directory server failure"). When some MX hosts resolve and others
//!   fail temporarily, the ones that resolved are returned.
//! - An address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321
//!   4.1.3) routes to itself without DNS.
//!
//! Names are looked up as absolute names (a trailing dot): the system's
//! search list never applies to mail domains (RFC 5321 5.1, "the domain
//! name ... MUST be a fully-qualified domain name"); the hosts file is not
//! read either, as with Postfix's default `smtp_host_lookup = dns`.
//! Internationalized domains are looked up in their A-label form
//! (RFC 5890), which is also the form `Hop::host` has.
//!
//! Configuration, `[relay]` in mailroom's config file:
//!
//! - `resolver = "IP:PORT"`: the DNS server to ask, over UDP with TCP for
//!   truncated answers (RFC 1035 4.2; tests point it at `testdns`). Empty:
//!   the servers of the system's `/etc/resolv.conf`.
//! - `port = 25`: the SMTP port of every hop found through DNS or a
//!   literal (tests point it elsewhere). The smarthost has its own port.
//! - `smarthost = "host:port"`: every message goes to that one host,
//!   whatever its domain; MX records are not consulted. An IP (bare or in
//!   brackets) needs no DNS; a name is resolved with A/AAAA only. Since a
//!   smarthost that does not resolve is the operator's problem and not the
//!   recipient's, every failure there is [`RouteError::Temporary`].
//!
//! [`RouterConfig::timeout`] bounds one whole [`Router::route`] call; a
//! query that has not answered when it runs out is a temporary failure.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use rand::Rng;
use rand::seq::SliceRandom;

/// RFC 5321 4.5.4.2 / `[relay] port`: SMTP relays on port 25.
pub const DEFAULT_PORT: u16 = 25;
/// Bound on one `route()` call, every query included. RFC 5321 does not
/// name one; resolv.conf's default is 5 s a query and 2 attempts, and a
/// route is two rounds of queries (MX, then addresses).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// MX hosts resolved and returned for one domain. RFC 5321 5.1 lets a
/// client limit the MX hosts it tries; Postfix tries 5 addresses.
pub const MAX_MX_HOSTS: usize = 10;
/// Tries of one query before it counts as timed out (resolv.conf's
/// `attempts:` default).
const QUERY_ATTEMPTS: usize = 2;
/// Rounds of queries in one route: MX, then the hosts' A/AAAA in parallel.
const QUERY_ROUNDS: u32 = 2;
/// Floor of one query's timeout, whatever the route's timeout.
const MIN_QUERY_TIMEOUT: Duration = Duration::from_millis(100);

/// What `Router::new` needs, from `[relay]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// `[relay] resolver`: the DNS server to ask; None: /etc/resolv.conf.
    pub resolver: Option<SocketAddr>,
    /// `[relay] port`: the SMTP port of hops found by MX, A/AAAA or literal.
    pub port: u16,
    /// `[relay] smarthost` as host and port: everything goes there.
    pub smarthost: Option<(String, u16)>,
    /// Bound on one `Router::route` call.
    pub timeout: Duration,
    /// Our own host names, lower case: an MX list that names one of them
    /// is cut there (RFC 5321 5.1).
    pub ours: Vec<String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            resolver: None,
            port: DEFAULT_PORT,
            smarthost: None,
            timeout: DEFAULT_TIMEOUT,
            ours: Vec::new(),
        }
    }
}

/// One host to try, with its addresses in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The MX name, the domain (implicit MX), the smarthost or the literal;
    /// lower case, A-labels, no trailing dot. The name a certificate is
    /// checked against when TLS is verified.
    pub host: String,
    /// IPv4 then IPv6, each with the port to connect to; never empty.
    pub addrs: Vec<SocketAddr>,
}

/// Why a domain has no route; the worker maps it to an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// NXDOMAIN, or no MX and no A/AAAA, or MX hosts without addresses,
    /// or a malformed domain or literal: permanent, 5.1.2.
    NoSuchDomain,
    /// RFC 7505 null MX: the domain accepts no mail; permanent, 5.1.10.
    NullMx,
    /// Timeout, SERVFAIL, REFUSED, network error: retry later, 4.4.3.
    Temporary(String),
    /// We are the best MX for the domain yet it is not ours: the mail
    /// would loop (RFC 5321 5.1); permanent, 5.4.6.
    LoopsToUs,
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, RouteError::Temporary(_))
    }

    /// The enhanced status code (RFC 3463) for a DSN or a log line.
    pub fn status(&self) -> &'static str {
        match self {
            // RFC 3463 3.2: X.1.2 bad destination system address.
            RouteError::NoSuchDomain => "5.1.2",
            // RFC 7505 4.2 (registered by RFC 7505 5).
            RouteError::NullMx => "5.1.10",
            // RFC 3463 3.5: X.4.3 directory server failure.
            RouteError::Temporary(_) => "4.4.3",
            // RFC 3463 3.5: X.4.6 routing loop detected.
            RouteError::LoopsToUs => "5.4.6",
        }
    }

    /// A reply code for a DSN's Diagnostic-Code, since no remote server
    /// answered: 556 for a null MX (RFC 7505 4.2), else 550 or 451.
    pub fn reply_code(&self) -> u16 {
        match self {
            RouteError::NoSuchDomain => 550,
            RouteError::NullMx => 556,
            RouteError::Temporary(_) => 451,
            RouteError::LoopsToUs => 554,
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NoSuchDomain => {
                f.write_str("no such domain, or no host there to take mail")
            }
            RouteError::NullMx => f.write_str("the domain accepts no mail (null MX, RFC 7505)"),
            RouteError::Temporary(why) => write!(f, "DNS failure, will retry: {why}"),
            RouteError::LoopsToUs => {
                f.write_str("mail for the domain loops back to us (we are its best MX)")
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// Resolves routes with one resolver (and its cache) for the process.
#[derive(Debug, Clone)]
pub struct Router {
    config: RouterConfig,
    resolver: TokioResolver,
}

/// How one name's lookup failed.
enum Lookup {
    /// RFC 1035 4.1.1 name error: the name does not exist.
    NxDomain,
    /// RFC 2308 2.2: the name exists, without records of the type.
    NoData,
    /// No answer: timeout, SERVFAIL, REFUSED, network.
    Temporary(String),
}

impl Router {
    /// Builds the resolver. Fails only when `resolver` is None and the
    /// system's configuration cannot be read (an error at startup rather
    /// than a queue that defers everything).
    pub fn new(config: RouterConfig) -> Result<Router, RouteError> {
        let mut builder = match config.resolver {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| RouteError::Temporary(format!("system resolver: {e}")))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = query_timeout(config.timeout);
        opts.attempts = QUERY_ATTEMPTS;
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| RouteError::Temporary(format!("resolver: {e}")))?;
        Ok(Router { config, resolver })
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The hops for mail to `domain`, in the order to try them (see the
    /// module's documentation), within `RouterConfig::timeout`.
    pub async fn route(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        let limit = self.config.timeout;
        match tokio::time::timeout(limit, self.route_untimed(domain)).await {
            Ok(r) => r,
            Err(_) => Err(RouteError::Temporary(format!(
                "{domain}: no DNS answer within {limit:?}"
            ))),
        }
    }

    async fn route_untimed(&self, domain: &str) -> Result<Vec<Hop>, RouteError> {
        if let Some((host, port)) = &self.config.smarthost {
            return self.smarthost(host, *port).await;
        }
        let domain = domain.trim();
        if domain.starts_with('[') {
            let ip = parse_literal(domain).ok_or(RouteError::NoSuchDomain)?;
            return Ok(vec![Hop {
                host: domain.to_string(),
                addrs: vec![SocketAddr::new(ip, self.config.port)],
            }]);
        }
        let name = absolute(domain).ok_or(RouteError::NoSuchDomain)?;
        let exchanges = match self.resolver.mx_lookup(name.clone()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) => match classify(e) {
                Lookup::NxDomain => return Err(RouteError::NoSuchDomain),
                Lookup::NoData => Vec::new(),
                Lookup::Temporary(why) => {
                    return Err(RouteError::Temporary(format!("MX {domain}: {why}")));
                }
            },
        };
        if exchanges.is_empty() {
            // RFC 5321 5.1: no MX, the domain is its own implicit MX.
            return match self.addrs(&name, self.config.port).await {
                Ok(addrs) => Ok(vec![Hop {
                    host: host_name(&name),
                    addrs,
                }]),
                Err(Lookup::NxDomain | Lookup::NoData) => Err(RouteError::NoSuchDomain),
                Err(Lookup::Temporary(why)) => {
                    Err(RouteError::Temporary(format!("A/AAAA {domain}: {why}")))
                }
            };
        }
        // RFC 7505 3: "." as exchange is the null MX, never a host.
        if exchanges.iter().all(|(_, x)| x.is_root()) {
            return Err(RouteError::NullMx);
        }
        let exchanges = drop_ours(exchanges, &self.config.ours)?;
        let order = order_exchanges(exchanges, &mut rand::rng());
        self.resolve_exchanges(domain, order).await
    }

    /// A/AAAA of each MX host, in parallel, kept in MX order.
    async fn resolve_exchanges(
        &self,
        domain: &str,
        order: Vec<Name>,
    ) -> Result<Vec<Hop>, RouteError> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, name) in order.iter().enumerate() {
            let router = self.clone();
            let name = name.clone();
            tasks.spawn(async move { (i, router.addrs(&name, router.config.port).await) });
        }
        let mut results: Vec<Option<Result<Vec<SocketAddr>, Lookup>>> =
            order.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, r)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Err(e) => tracing::warn!(domain, error = %e, "MX host lookup task failed"),
            }
        }
        let mut hops = Vec::new();
        let mut temporary = None;
        for (name, r) in order.iter().zip(results) {
            match r {
                Some(Ok(addrs)) => hops.push(Hop {
                    host: host_name(name),
                    addrs,
                }),
                Some(Err(Lookup::NxDomain | Lookup::NoData)) => {
                    tracing::debug!(domain, mx = %name, "MX host has no A/AAAA");
                }
                Some(Err(Lookup::Temporary(why))) => {
                    temporary.get_or_insert(format!("A/AAAA {}: {why}", host_name(name)));
                }
                None => {
                    temporary.get_or_insert(format!("A/AAAA {}: lookup lost", host_name(name)));
                }
            }
        }
        match (hops.is_empty(), temporary) {
            (false, _) => Ok(hops),
            (true, Some(why)) => Err(RouteError::Temporary(why)),
            // RFC 5321 5.1: MX records, none usable: an error to report.
            (true, None) => Err(RouteError::NoSuchDomain),
        }
    }

    /// The smarthost: no MX, and every failure is temporary.
    async fn smarthost(&self, host: &str, port: u16) -> Result<Vec<Hop>, RouteError> {
        let bare = host.trim();
        let inner = bare
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bare);
        let ip = inner.parse::<IpAddr>().ok().or_else(|| parse_literal(bare));
        if let Some(ip) = ip {
            return Ok(vec![Hop {
                host: bare.to_string(),
                addrs: vec![SocketAddr::new(ip, port)],
            }]);
        }
        let Some(name) = absolute(inner) else {
            return Err(RouteError::Temporary(format!(
                "smarthost {host:?} is not a host name"
            )));
        };
        match self.addrs(&name, port).await {
            Ok(addrs) => Ok(vec![Hop {
                host: host_name(&name),
                addrs,
            }]),
            Err(Lookup::NxDomain | Lookup::NoData) => Err(RouteError::Temporary(format!(
                "smarthost {host}: no A/AAAA"
            ))),
            Err(Lookup::Temporary(why)) => {
                Err(RouteError::Temporary(format!("smarthost {host}: {why}")))
            }
        }
    }

    /// A and AAAA of one host: IPv4 first, then IPv6. Err only when no
    /// address at all came back.
    async fn addrs(&self, name: &Name, port: u16) -> Result<Vec<SocketAddr>, Lookup> {
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.clone()),
            self.resolver.ipv6_lookup(name.clone())
        );
        let mut addrs = Vec::new();
        let mut temporary = None;
        for r in [v4, v6] {
            match r {
                Ok(lookup) => {
                    for rec in lookup.answers() {
                        let ip = match &rec.data {
                            RData::A(a) => IpAddr::V4(a.0),
                            RData::AAAA(a) => IpAddr::V6(a.0),
                            _ => continue,
                        };
                        let sa = SocketAddr::new(ip, port);
                        if !addrs.contains(&sa) {
                            addrs.push(sa);
                        }
                    }
                }
                Err(e) => {
                    if let Lookup::Temporary(why) = classify(e) {
                        temporary.get_or_insert(why);
                    }
                }
            }
        }
        match (addrs.is_empty(), temporary) {
            (false, _) => Ok(addrs),
            (true, Some(why)) => Err(Lookup::Temporary(why)),
            (true, None) => Err(Lookup::NoData),
        }
    }
}

/// Per-query timeout: the route's bound spread over its rounds and tries.
fn query_timeout(route: Duration) -> Duration {
    let per = route / (QUERY_ROUNDS * QUERY_ATTEMPTS as u32);
    per.max(MIN_QUERY_TIMEOUT)
}

/// A negative answer (NXDOMAIN or NODATA) is an answer; anything else is
/// a failure to get one.
fn classify(e: NetError) -> Lookup {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => Lookup::NxDomain,
            ResponseCode::NoError => Lookup::NoData,
            code => Lookup::Temporary(format!("response code {code}")),
        },
        NetError::Timeout => Lookup::Temporary("timed out".to_string()),
        other => Lookup::Temporary(other.to_string()),
    }
}

/// RFC 5321 5.1: when we are among a domain's MX hosts, the MX records of
/// our preference and above are dropped (the others are the better way);
/// none left means the mail would loop back to us.
fn drop_ours(mx: Vec<(u16, Name)>, ours: &[String]) -> Result<Vec<(u16, Name)>, RouteError> {
    let own = mx
        .iter()
        .filter(|(_, x)| ours.iter().any(|o| host_name(x).eq_ignore_ascii_case(o)))
        .map(|(p, _)| *p)
        .min();
    let Some(own) = own else {
        return Ok(mx);
    };
    let better: Vec<(u16, Name)> = mx.into_iter().filter(|(p, _)| *p < own).collect();
    if better.is_empty() {
        Err(RouteError::LoopsToUs)
    } else {
        Ok(better)
    }
}

/// Sorts by preference (RFC 5321 5.1: lowest first), in random order
/// within one preference, drops "." and repeats, keeps `MAX_MX_HOSTS`.
fn order_exchanges<R: Rng + ?Sized>(mut mx: Vec<(u16, Name)>, rng: &mut R) -> Vec<Name> {
    mx.shuffle(rng);
    // A stable sort keeps the shuffled order within one preference.
    mx.sort_by_key(|(pref, _)| *pref);
    let mut seen = HashSet::new();
    mx.into_iter()
        .map(|(_, x)| x)
        .filter(|x| !x.is_root() && seen.insert(host_name(x)))
        .take(MAX_MX_HOSTS)
        .collect()
}

/// A mail domain or host as an absolute DNS name (A-labels for an IDN);
/// None for what cannot be one.
fn absolute(domain: &str) -> Option<Name> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() || d.contains(['[', ']', ' ', '@']) {
        return None;
    }
    let mut name = Name::from_utf8(d).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// A name as `Hop::host` has it: ASCII, lower case, no final dot.
fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// RFC 5321 4.1.3 address literals: `[IPv4]` and `[IPv6:IPv6]` (the tag
/// compared without case); general literals are not routable.
fn parse_literal(s: &str) -> Option<IpAddr> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    match inner.split_once(':') {
        Some((tag, v6)) if tag.eq_ignore_ascii_case("IPv6") => {
            v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        Some(_) => None,
        None => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn n(s: &str) -> Name {
        absolute(s).unwrap()
    }

    fn names(v: &[Name]) -> Vec<String> {
        v.iter().map(host_name).collect()
    }

    #[test]
    fn exchanges_sort_by_preference_and_drop_root_and_repeats() {
        let mx = vec![
            (20, n("b.test")),
            (10, n("a.test")),
            (0, Name::root()),
            (30, n("A.test")),
            (5, n("first.test")),
        ];
        let got = order_exchanges(mx, &mut StdRng::seed_from_u64(1));
        assert_eq!(names(&got), ["first.test", "a.test", "b.test"]);
    }

    #[test]
    fn one_preference_is_shuffled_and_every_order_shows_up() {
        let mx: Vec<_> = ["x.test", "y.test", "z.test"]
            .iter()
            .map(|h| (10, n(h)))
            .chain([(5, n("w.test")), (20, n("last.test"))])
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let got = names(&order_exchanges(mx.clone(), &mut rng));
            assert_eq!(got.first().map(String::as_str), Some("w.test"));
            assert_eq!(got.last().map(String::as_str), Some("last.test"));
            seen.insert(got[1..4].to_vec());
        }
        // 3! orders of the middle preference; a fixed seed, so no flake.
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn at_most_max_mx_hosts() {
        let mx: Vec<_> = (0..30u16).map(|i| (i, n(&format!("mx{i}.test")))).collect();
        let got = order_exchanges(mx, &mut StdRng::seed_from_u64(0));
        assert_eq!(got.len(), MAX_MX_HOSTS);
        assert_eq!(host_name(&got[0]), "mx0.test");
    }

    #[test]
    fn literals() {
        assert_eq!(
            parse_literal("[192.0.2.1]"),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            parse_literal("[ipv6:2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        for bad in [
            "[::1]",
            "[IPv6:192.0.2.1]",
            "[192.0.2.256]",
            "[x-tag:stuff]",
            "192.0.2.1",
            "[192.0.2.1",
        ] {
            assert_eq!(parse_literal(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_absolute_a_labels() {
        assert_eq!(host_name(&n("Example.TEST.")), "example.test");
        assert!(n("example.test").is_fqdn());
        assert_eq!(host_name(&n("bücher.test")), "xn--bcher-kva.test");
        assert!(absolute("").is_none());
        assert!(absolute("a b.test").is_none());
        assert!(absolute("[1.2.3.4]").is_none());
    }

    #[test]
    fn errors_map_to_status_and_permanence() {
        assert!(RouteError::NoSuchDomain.is_permanent());
        assert!(RouteError::NullMx.is_permanent());
        assert!(!RouteError::Temporary("x".into()).is_permanent());
        assert_eq!(RouteError::NoSuchDomain.status(), "5.1.2");
        assert_eq!(RouteError::NullMx.status(), "5.1.10");
        assert_eq!(RouteError::NullMx.reply_code(), 556);
        assert_eq!(RouteError::Temporary(String::new()).status(), "4.4.3");
    }

    #[test]
    fn query_timeout_spreads_the_route_timeout() {
        assert_eq!(
            query_timeout(Duration::from_secs(20)),
            Duration::from_secs(5)
        );
        assert_eq!(query_timeout(Duration::from_millis(1)), MIN_QUERY_TIMEOUT);
    }

    #[test]
    fn our_own_mx_and_the_worse_ones_are_dropped() {
        let n = |s: &str| Name::from_utf8(s).expect("name");
        let mx = vec![
            (10, n("mx1.other.test.")),
            (20, n("mail.us.test.")),
            (30, n("mx3.other.test.")),
        ];
        let ours = vec!["mail.us.test".to_string()];
        let kept = drop_ours(mx.clone(), &ours).expect("better ones");
        assert_eq!(kept, vec![(10, n("mx1.other.test."))]);
        assert_eq!(drop_ours(mx.clone(), &[]).expect("all"), mx);
        // We are the best: the mail would come back to us.
        let best = vec![(5, n("MAIL.us.test.")), (10, n("mx1.other.test."))];
        assert_eq!(drop_ours(best, &ours), Err(RouteError::LoopsToUs));
    }
}

//! The outbound queue worker (SPEC 1 "Outbound", issue 12): claims due
//! queue rows with a lease, routes each destination domain (a smarthost,
//! or the domain's mail exchangers), carries every message for it over one
//! connection, and records each recipient's outcome: delivered rows go,
//! temporary failures are retried with doubling backoff from
//! `[relay] retry_initial` to `retry_max` until `max_queue_lifetime`,
//! permanent ones (and those past the lifetime) go, replaced by a DSN to
//! the sender (RFC 3464, issue 13) in the same transaction.
//!
//! It wakes on the store's `Queue` change (a delivery that queues, a CLI
//! retry, from any process) and on a timer for rows coming due. A crash
//! between the remote 250 and our commit sends a message twice at worst:
//! the lease ends and the row is claimed again; nothing is lost.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto_smtp::Notify;
use store::{BodyId, Change, QueueEntry, Settle, Store};
use tokio::sync::Semaphore;

use crate::client::{ClientError, Connection, Content, Credentials, Outcome, Outgoing, TlsPolicy};
use crate::dsn::{Action, RecipientReport, Report};

/// How long a claim holds its rows unless renewed: a run still at work
/// renews its claim every [`LEASE`] / [`RENEWALS_PER_LEASE`], so a run may
/// last as long as the client's own timeouts let it (RFC 5321 4.5.3.2:
/// minutes), while the rows of a node that died go to another within
/// this time.
pub const LEASE: Duration = Duration::from_secs(120);
/// Renewals of a claim within one lease: two may fail (a slow database)
/// before the lease ends.
pub const RENEWALS_PER_LEASE: u32 = 3;
/// Rows claimed at once.
pub const CLAIM_BATCH: usize = 500;
/// The longest the worker sleeps without looking for due rows.
pub const MAX_POLL: Duration = Duration::from_secs(30);
/// Default `[relay] max_connections`: deliveries in flight at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// The worker's settings (`[relay]`).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Our name in EHLO (`[relay] helo_name`, default the host name).
    pub helo: String,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_queue_lifetime: Duration,
    pub max_connections: usize,
    /// Connections to one destination at once.
    pub max_connections_per_domain: usize,
    /// The local address outbound connections come from (`[relay]
    /// source_address`); None: the system's choice.
    pub source_address: Option<std::net::IpAddr>,
    /// How long a message waits before a recipient that asked for it
    /// (RFC 3461 NOTIFY=DELAY) gets a delay warning (`[relay]
    /// delay_warning`).
    pub delay_warning: Duration,
}

/// Default `[relay] delay_warning`: 4 hours, as Postfix's
/// `delay_warning_time` suggests.
pub const DEFAULT_DELAY_WARNING: Duration = Duration::from_secs(14_400);

pub type BounceFuture<'a> = Pin<Box<dyn Future<Output = crate::Targets> + Send + 'a>>;

/// Where a DSN goes (issue 13): the targets of the original sender's
/// address, with our own SRS addresses decoded; empty when there is
/// nowhere (the DSN then goes to postmaster).
pub trait BounceRoute: Send + Sync {
    fn resolve<'a>(&'a self, address: &'a str) -> BounceFuture<'a>;
    /// `postmaster@` our primary domain (RFC 5321 4.5.1).
    fn postmaster(&self) -> String;
}

/// Default `[relay] max_connections_per_domain`.
pub const DEFAULT_MAX_CONNECTIONS_PER_DOMAIN: usize = 10;

/// One server to try, with its addresses in order, and how to talk to it.
#[derive(Debug, Clone)]
pub struct Hop {
    pub host: String,
    pub addrs: Vec<SocketAddr>,
    pub tls: TlsPolicy,
    /// AUTH at a smarthost (only over verified TLS).
    pub auth: Option<Credentials>,
}

/// Why a domain could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFailure {
    /// No such domain, or a null MX: fail the recipients (with this text).
    Permanent(String),
    /// DNS trouble: retry later.
    Temporary(String),
}

pub type RouteFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Hop>, RouteFailure>> + Send + 'a>>;

/// Where mail for a domain goes (RFC 5321 5.1).
pub trait Routing: Send + Sync {
    fn route<'a>(&'a self, domain: &'a str) -> RouteFuture<'a>;
}

/// Everything through one relay (`[relay] smarthost`), with its TLS
/// (`smarthost_tls`) and AUTH (`smarthost_auth`).
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub tls: TlsPolicy,
    pub auth: Option<Credentials>,
}

impl Routing for Smarthost {
    fn route<'a>(&'a self, _domain: &'a str) -> RouteFuture<'a> {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| RouteFailure::Temporary(format!("smarthost {}: {e}", self.host)))?
                .collect();
            Ok(vec![Hop {
                host: self.host.clone(),
                addrs,
                tls: self.tls.clone(),
                auth: self.auth.clone(),
            }])
        })
    }
}

/// MX routing (RFC 5321 5.1) through [`crate::route::Router`]: MX by
/// preference, the implicit MX, null MX (RFC 7505) and NXDOMAIN failing
/// at once, DNS trouble retried. STARTTLS is opportunistic.
impl Routing for crate::route::Router {
    fn route<'a>(&'a self, domain: &'a str) -> RouteFuture<'a> {
        Box::pin(async move {
            match crate::route::Router::route(self, domain).await {
                Ok(hops) => Ok(hops
                    .into_iter()
                    .map(|h| Hop {
                        host: h.host,
                        addrs: h.addrs,
                        tls: TlsPolicy::Opportunistic,
                        auth: None,
                    })
                    .collect()),
                Err(e) if e.is_permanent() => Err(RouteFailure::Permanent(format!(
                    "{} {} {domain}: {e}",
                    e.reply_code(),
                    e.status()
                ))),
                Err(e) => Err(RouteFailure::Temporary(format!(
                    "{} {} {domain}: {e}",
                    e.reply_code(),
                    e.status()
                ))),
            }
        })
    }
}

/// Requires verified STARTTLS for some domains (`[relay] require_tls`):
/// their hops get a verified policy, and a failure to get it defers.
pub struct RequireTls {
    pub inner: Arc<dyn Routing>,
    /// Lower-case domains.
    pub domains: Vec<String>,
    pub roots: Arc<rustls::RootCertStore>,
}

impl Routing for RequireTls {
    fn route<'a>(&'a self, domain: &'a str) -> RouteFuture<'a> {
        Box::pin(async move {
            let mut hops = self.inner.route(domain).await?;
            if self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                for h in &mut hops {
                    if matches!(h.tls, TlsPolicy::Opportunistic) {
                        h.tls = TlsPolicy::Verified {
                            roots: Arc::clone(&self.roots),
                            implicit: false,
                        };
                    }
                }
            }
            Ok(hops)
        })
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub delivered: AtomicU64,
    pub deferred: AtomicU64,
    pub failed: AtomicU64,
    /// DSNs made (RFC 3464): failures, delay warnings, "relayed".
    pub dsns: AtomicU64,
    /// Rows in the queue, and the age in seconds of the oldest, as of
    /// the worker's last look.
    pub queue_size: AtomicU64,
    pub oldest_age: AtomicU64,
    /// Unix second of the last refresh of the two above.
    refreshed: AtomicU64,
}

/// How often the queue's size and age are read for `/metrics`.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The domain of an address (after the last `@`), lower-cased: RFC 5321
/// 2.4, domains are case-insensitive.
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The delay before attempt `attempts + 1`: retry_initial doubling, capped.
pub fn backoff(cfg: &WorkerConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
    cfg.retry_initial.saturating_mul(factor).min(cfg.retry_max)
}

/// The outbound worker.
pub struct Worker {
    store: Arc<dyn Store>,
    cfg: WorkerConfig,
    routing: Arc<dyn Routing>,
    pub stats: Arc<WorkerStats>,
    slots: Arc<Semaphore>,
    down: Arc<Down>,
    bounces: Arc<dyn BounceRoute>,
    /// DKIM keys that sign what leaves (RFC 6376); None: nothing is signed.
    dkim: Option<Arc<crate::dkim::Signer>>,
    /// How long a claim holds its rows ([`LEASE`] unless set).
    lease: Duration,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        cfg: WorkerConfig,
        routing: Arc<dyn Routing>,
        bounces: Arc<dyn BounceRoute>,
    ) -> Worker {
        let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        Worker {
            store,
            cfg,
            routing,
            stats: Arc::default(),
            slots,
            down: Arc::default(),
            bounces,
            dkim: None,
            lease: LEASE,
        }
    }

    /// Claims hold their rows for `lease` (`[relay] queue_lease`): after
    /// a node died, another node sends its rows once the lease ended.
    pub fn with_lease(mut self, lease: Duration) -> Worker {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Signs each message at send time with the keys of its From domain.
    pub fn with_dkim(mut self, signer: Arc<crate::dkim::Signer>) -> Worker {
        self.dkim = Some(signer);
        self
    }

    /// Runs until `stop` resolves. Deliveries in flight go on in their
    /// own tasks until the process exits; what they had not finished is
    /// released at the next start.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut feed = self.store.subscribe();
        // What a previous run had claimed when it died is due now.
        match self.store.release_queue_claims().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "queue: released the claims of a previous run"),
            Err(e) => tracing::warn!(error = %e, "queue: cannot release old claims"),
        }
        let poll = self
            .cfg
            .retry_initial
            .clamp(Duration::from_secs(1), MAX_POLL);
        tokio::pin!(stop);
        loop {
            // A retry that came while the last run was busy must clear the
            // down list before the next claim, or its rows would be
            // deferred again at once.
            while let Ok(change) = feed.try_recv() {
                if change == Change::QueueRetry {
                    self.down.clear();
                }
            }
            let worked = self.once().await;
            self.refresh_stats().await;
            if worked {
                continue;
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(poll) => {}
                _ = wait_queue_change(&mut feed, &self.down) => {}
            }
        }
    }

    /// The queue's size and oldest entry, for `/metrics`: at most once per
    /// `STATS_EVERY`, not on every claim of a busy queue.
    async fn refresh_stats(&self) {
        let now = unix_now();
        if now.saturating_sub(self.stats.refreshed.load(Ordering::Relaxed) as i64)
            < STATS_EVERY.as_secs() as i64
        {
            return;
        }
        self.stats
            .refreshed
            .store(now.max(0) as u64, Ordering::Relaxed);
        if let Ok((size, oldest)) = self.store.queue_stats().await {
            self.stats.queue_size.store(size, Ordering::Relaxed);
            let age = oldest.map_or(0, |created| unix_now().saturating_sub(created).max(0));
            self.stats.oldest_age.store(age as u64, Ordering::Relaxed);
        }
    }

    /// Claims due rows and delivers them; true when there were some.
    pub async fn once(&self) -> bool {
        let now = unix_now();
        let lease = now + i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX / 2);
        let rows = match self.store.claim_queue(now, lease, CLAIM_BATCH).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "queue: cannot claim rows");
                return false;
            }
        };
        if rows.is_empty() {
            return false;
        }
        // The claim is renewed until every destination's run has ended,
        // including while a run waits for a slot: an ended lease would let
        // another claim (this node's next, or another node's) send the
        // rows a second time. Each run holds a sender; the renewer stops
        // when the last one is dropped.
        let (running, ended) = tokio::sync::mpsc::channel::<()>(1);
        self.renew_claims(rows.iter().map(|r| r.id).collect(), ended);
        let mut by_domain: BTreeMap<String, Vec<QueueEntry>> = BTreeMap::new();
        for row in rows {
            by_domain
                .entry(domain_of(&row.recipient))
                .or_default()
                .push(row);
        }
        // Each destination runs on its own: a slow one (its timeouts run
        // to minutes) does not hold back the next claim for the others.
        // Its rows stay leased meanwhile, so no claim takes them twice.
        for (domain, rows) in by_domain {
            let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
                break;
            };
            let job = Job {
                store: Arc::clone(&self.store),
                cfg: self.cfg.clone(),
                routing: Arc::clone(&self.routing),
                stats: Arc::clone(&self.stats),
                down: Arc::clone(&self.down),
                bounces: Arc::clone(&self.bounces),
                dkim: self.dkim.clone(),
            };
            let running = running.clone();
            tokio::spawn(async move {
                job.domain(&domain, rows).await;
                drop(permit);
                drop(running);
            });
        }
        true
    }

    /// Renews the claim on `ids` every [`LEASE`] / [`RENEWALS_PER_LEASE`]
    /// until every sender of `ended` is gone. Rows settled meanwhile are
    /// left as they are (the store renews only rows still `sending`).
    fn renew_claims(&self, ids: Vec<i64>, mut ended: tokio::sync::mpsc::Receiver<()>) {
        let store = Arc::clone(&self.store);
        let lease = self.lease;
        let every = (lease / RENEWALS_PER_LEASE).max(Duration::from_millis(200));
        let secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX / 2);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = ended.recv() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = unix_now();
                if let Err(e) = store.renew_queue_claims(ids.clone(), now, now + secs).await {
                    tracing::warn!(error = %e, "queue: cannot renew a claim");
                }
            }
        });
    }
}

async fn wait_queue_change(feed: &mut tokio::sync::broadcast::Receiver<Change>, down: &Down) {
    loop {
        match feed.recv().await {
            Ok(Change::Queue) => return,
            Ok(Change::QueueRetry) => {
                down.clear();
                return;
            }
            Ok(_) => {}
            // Missed some: there may be queue work among them.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One destination's delivery run.
#[derive(Clone)]
struct Job {
    store: Arc<dyn Store>,
    cfg: WorkerConfig,
    routing: Arc<dyn Routing>,
    stats: Arc<WorkerStats>,
    down: Arc<Down>,
    bounces: Arc<dyn BounceRoute>,
    dkim: Option<Arc<crate::dkim::Signer>>,
}

mod settle;

/// Destinations that keep failing, backed off as a whole: their rows
/// wait without a connection attempt until the destination's time.
#[derive(Default)]
pub struct Down {
    /// domain -> (consecutive failed runs, unix second it may be tried).
    map: std::sync::Mutex<HashMap<String, (u32, i64)>>,
}

impl Down {
    /// When the destination may be tried again, if it is backed off now.
    fn until(&self, domain: &str, now: i64) -> Option<i64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(domain).map(|(_, t)| *t).filter(|t| *t > now)
    }

    fn failed(&self, domain: &str, cfg: &WorkerConfig, now: i64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_DOWN && !map.contains_key(domain) {
            map.retain(|_, (_, t)| *t > now);
        }
        let e = map.entry(domain.to_string()).or_insert((0, now));
        if e.1 > now {
            // Another connection of this run already found it down: one
            // failed run counts once.
            return;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now + backoff(cfg, e.0.saturating_sub(1)).as_secs() as i64;
    }

    /// Forgets every down destination (an operator's retry).
    fn clear(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.clear();
    }

    fn up(&self, domain: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(domain);
    }
}

/// Destinations remembered as down at most (bounded memory).
const MAX_DOWN: usize = 10_000;

impl Job {
    async fn domain(&self, domain: &str, rows: Vec<QueueEntry>) {
        // A destination that keeps failing waits as a whole: its new rows
        // too, without a connection attempt each.
        if let Some(until) = self.down.until(domain, unix_now()) {
            for r in &rows {
                let why = format!("destination {domain} is down; next try at {until}");
                if let Err(e) = self.store.defer_queue(r.id, until, why).await {
                    tracing::warn!(id = r.id, error = %e, "outbound: cannot record the outcome");
                }
            }
            return;
        }
        let hops = match self.routing.route(domain).await {
            Ok(h) => h,
            Err(RouteFailure::Permanent(why)) => {
                let results = rows
                    .into_iter()
                    .map(|r| (r, Outcome::Failed(why.clone())))
                    .collect();
                self.settle(results, "-", false, None).await;
                return;
            }
            Err(RouteFailure::Temporary(why)) => {
                let results = rows
                    .into_iter()
                    .map(|r| (r, Outcome::Deferred(why.clone())))
                    .collect();
                self.settle(results, "-", false, None).await;
                return;
            }
        };
        // One message per (body, sender): its recipients go in one
        // transaction.
        let mut messages: HashMap<(BodyId, String), Vec<QueueEntry>> = HashMap::new();
        for r in rows {
            messages
                .entry((r.body, r.sender.clone()))
                .or_default()
                .push(r);
        }
        // A big body is not held here: its first pass signs it and learns
        // its size, and the connection streams it from the store (issue
        // 19), so pending messages cost their envelope each.
        let mut pending: Vec<(Outgoing, Vec<QueueEntry>)> = Vec::new();
        for ((body, sender), rows) in messages {
            match Content::from_store(&self.store, body, self.dkim.as_deref()).await {
                Ok(content) => pending.push((
                    Outgoing {
                        sender,
                        recipients: rows.iter().map(|r| r.recipient.clone()).collect(),
                        content,
                        envid: rows.first().and_then(|r| r.envid.clone()),
                        ret: rows.first().and_then(|r| r.ret.clone()),
                        rcpt_dsn: rows
                            .iter()
                            .map(|r| (r.notify.clone(), r.orcpt.clone()))
                            .collect(),
                        smtputf8: rows.iter().any(|r| r.smtputf8),
                    },
                    rows,
                )),
                Err(e) => {
                    let why = format!("store: {e}");
                    let results = rows
                        .into_iter()
                        .map(|r| (r, Outcome::Deferred(why.clone())))
                        .collect();
                    self.settle(results, "-", false, None).await;
                }
            }
        }
        // Several connections for a busy destination, each carrying its
        // share of the messages one after another.
        let k = self
            .cfg
            .max_connections_per_domain
            .clamp(1, pending.len().max(1));
        let mut shares: Vec<Vec<(Outgoing, Vec<QueueEntry>)>> =
            (0..k).map(|_| Vec::new()).collect();
        for (i, p) in pending.into_iter().enumerate() {
            if let Some(share) = shares.get_mut(i % k) {
                share.push(p);
            }
        }
        let hops = Arc::new(hops);
        let mut sessions = tokio::task::JoinSet::new();
        for share in shares.into_iter().filter(|s| !s.is_empty()) {
            let job = self.clone();
            let hops = Arc::clone(&hops);
            let domain = domain.to_string();
            sessions.spawn(async move { job.session(&domain, &hops, share).await });
        }
        while sessions.join_next().await.is_some() {}
    }

    /// Every row of `pending` from `from` on gets the same temporary
    /// outcome (the connection is gone).
    async fn defer_rest(
        &self,
        pending: Vec<(Outgoing, Vec<QueueEntry>)>,
        from: usize,
        why: &str,
        host: &str,
    ) {
        for (msg, rows) in pending.into_iter().skip(from) {
            let results = rows
                .into_iter()
                .map(|r| (r, Outcome::Deferred(why.to_string())))
                .collect();
            self.settle(results, host, false, msg.content.whole_bytes())
                .await;
        }
    }

    /// One connection to the first reachable hop, carrying `pending`.
    async fn session(&self, domain: &str, hops: &[Hop], pending: Vec<(Outgoing, Vec<QueueEntry>)>) {
        let mut conn = None;
        let mut last_error = String::from("no address to connect to");
        'hops: for hop in hops {
            for addr in &hop.addrs {
                match Connection::open_with(
                    *addr,
                    &hop.host,
                    &self.cfg.helo,
                    &hop.tls,
                    hop.auth.as_ref(),
                    self.cfg.source_address,
                )
                .await
                {
                    Ok(c) => {
                        conn = Some(c);
                        break 'hops;
                    }
                    Err(e) => {
                        tracing::info!(domain, host = %hop.host, %addr, error = %e, "outbound: connection failed");
                        // A 5xx greeting or EHLO: try the next one too.
                        last_error = e.to_string();
                    }
                }
            }
        }
        let Some(mut conn) = conn else {
            self.down.failed(domain, &self.cfg, unix_now());
            self.defer_rest(pending, 0, &last_error, "-").await;
            return;
        };
        self.down.up(domain);
        let peer = conn.peer.clone();
        let count = pending.len();
        tracing::info!(domain, host = %peer, tls = conn.tls, messages = count, "outbound: connected");
        for i in 0..count {
            let Some((msg, rows)) = pending.get(i) else {
                break;
            };
            let results: Vec<(QueueEntry, Outcome)> = match conn.send(msg).await {
                Ok(outcomes) => rows.iter().cloned().zip(outcomes).collect(),
                Err(ClientError::Reply(code, text)) => {
                    let o = if code >= 500 {
                        Outcome::Failed(text)
                    } else {
                        Outcome::Deferred(text)
                    };
                    rows.iter().map(|r| (r.clone(), o.clone())).collect()
                }
                Err(e) => {
                    // The connection is gone: this and the rest wait.
                    self.defer_rest(pending, i, &e.to_string(), &peer).await;
                    return;
                }
            };
            let hop_dsn = conn.ext.dsn;
            self.settle(results, &peer, hop_dsn, msg.content.whole_bytes())
                .await;
            if i + 1 < count && conn.reset().await.is_err() {
                self.defer_rest(pending, i + 1, "RSET failed", &peer).await;
                return;
            }
        }
        conn.quit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_delay_to_the_cap() {
        let cfg = WorkerConfig {
            helo: "mx.test".into(),
            retry_initial: Duration::from_secs(300),
            retry_max: Duration::from_secs(14_400),
            max_queue_lifetime: Duration::from_secs(432_000),
            max_connections: 1,
            max_connections_per_domain: 1,
            source_address: None,
            delay_warning: DEFAULT_DELAY_WARNING,
        };
        let secs: Vec<u64> = (0..7).map(|a| backoff(&cfg, a).as_secs()).collect();
        assert_eq!(secs, [300, 600, 1200, 2400, 4800, 9600, 14_400]);
        assert_eq!(backoff(&cfg, 100).as_secs(), 14_400);
    }

    #[test]
    fn a_destination_that_keeps_failing_is_backed_off_as_a_whole() {
        let cfg = WorkerConfig {
            helo: "mx.test".into(),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(100),
            max_queue_lifetime: Duration::from_secs(1000),
            max_connections: 1,
            max_connections_per_domain: 1,
            source_address: None,
            delay_warning: DEFAULT_DELAY_WARNING,
        };
        let down = Down::default();
        assert_eq!(down.until("d.test", 0), None);
        down.failed("d.test", &cfg, 0);
        assert_eq!(down.until("d.test", 0), Some(10));
        // Another share of the same run: counted once.
        down.failed("d.test", &cfg, 0);
        assert_eq!(down.until("d.test", 0), Some(10));
        down.failed("d.test", &cfg, 10);
        assert_eq!(down.until("d.test", 10), Some(30));
        assert_eq!(down.until("d.test", 30), None, "due again");
        assert_eq!(down.until("other.test", 10), None);
        down.up("d.test");
        assert_eq!(down.until("d.test", 10), None);
        down.failed("d.test", &cfg, 10);
        down.failed("o.test", &cfg, 10);
        down.clear();
        assert_eq!(down.until("d.test", 10), None);
        assert_eq!(down.until("o.test", 10), None);
    }

    #[test]
    fn the_domain_is_after_the_last_at_and_lower_case() {
        assert_eq!(domain_of("Bob@Remote.Example"), "remote.example");
        assert_eq!(domain_of("\"a@b\"@c.test"), "c.test");
    }
}

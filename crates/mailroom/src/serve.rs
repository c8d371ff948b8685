//! `mailroom serve`: opens the store and directory, loads (or makes) the
//! TLS certificate, binds every listener with its role, and runs until
//! SIGTERM/SIGINT, then shuts down gracefully (SPEC 7): stop accepting,
//! let transactions in flight finish within `shutdown_timeout`, answer 421
//! to idle sessions, exit 0. SIGHUP reloads the certificates.

use std::sync::Arc;
use std::time::Duration;

use server::smtp::{SmtpConfig, SmtpContext, VrfyPolicy};
use server::{
    Authenticator, CertSource, ConnectionLimits, ConnectionTracker, Listener, MemoryBudget,
    Metrics, PresenceRegistry, Role, Shutdown, Tls, admin,
};
use store::Store;
use tokio::net::TcpListener;

use crate::commands::{open_directory_async, open_store_async};
use crate::config::{Loaded, addresses, networks};

pub fn run(loaded: Loaded) -> Result<(), String> {
    init_logging(&loaded.config.log.level);
    for w in loaded.config.warnings() {
        tracing::warn!("{w}");
    }
    crate::datadir::prepare(
        &loaded.data_dir,
        crate::datadir::Missing::Create,
        &mut |note| {
            tracing::warn!("{note}");
        },
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(serve(loaded))
}

fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal, not in log files.
    // A log that cannot be written (stderr closed: `serve | head`) is lost,
    // never fatal: the writer swallows errors, and the subscriber's own
    // report of a failed write (an eprintln!, which panics on a closed
    // stderr) is off.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| LossyStderr)
        .log_internal_errors(false)
        .try_init();
}

/// Standard error for logs: a failed write is dropped, not reported.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn smtp_config(loaded: &Loaded) -> Result<SmtpConfig, String> {
    let c = &loaded.config;
    let mut s = SmtpConfig::new(loaded.hostname.clone());
    s.max_message_size = c.smtp.max_message_size;
    s.max_recipients = c.smtp.max_recipients;
    s.relay_networks = networks("smtp.relay_networks", &c.smtp.relay_networks)?;
    s.local_networks = networks("local_networks", &c.local_networks)?;
    s.legacy_send = c.smtp.legacy_send;
    s.legacy_send_any = c.smtp.legacy_send_from == "any";

    s.vrfy = if c.smtp.vrfy == "252" {
        VrfyPolicy::Cannot
    } else {
        VrfyPolicy::Disclose
    };
    s.expn = c.smtp.expn;
    s.max_errors = c.smtp.max_errors;
    s.max_line_length = c.smtp.max_line_length;
    s.command_timeout = Duration::from_secs(c.smtp.command_timeout);
    s.data_timeout = Duration::from_secs(c.smtp.data_timeout);
    s.connections = ConnectionLimits {
        max_total: c.smtp.max_connections,
        max_per_ip: c.smtp.max_connections_per_ip,
    };
    s.mta_auth = c.smtp.mta_auth;
    s.submission = server::smtp::config::SubmissionLimits {
        max_messages_per_hour: c.submission.max_messages_per_hour,
        max_recipients: c.submission.max_recipients,
    };
    Ok(s)
}

fn pop3_config(loaded: &Loaded) -> Result<server::pop3::Pop3Config, String> {
    let c = &loaded.config;
    Ok(server::pop3::Pop3Config {
        idle_timeout: Duration::from_secs(c.pop3.idle_timeout),
        connections: ConnectionLimits {
            max_total: c.pop3.max_connections,
            max_per_ip: c.pop3.max_connections_per_ip,
        },
        plaintext_networks: networks("local_networks", &c.local_networks)?,
        max_bad_commands: c.pop3.max_bad_commands,
    })
}

/// The outbound worker of `[relay]`: a smarthost, or direct delivery to
/// each domain's mail servers.
/// `[checks]`, asking the `[relay] resolver` like the outbound worker.
fn checks(
    loaded: &Loaded,
    signer: Arc<delivery::dkim::Signer>,
) -> Result<server::smtp::checks::Checks, String> {
    let c = &loaded.config.checks;
    let r = &loaded.config.relay;
    let resolver = if r.resolver.is_empty() {
        None
    } else {
        addresses("relay.resolver", std::slice::from_ref(&r.resolver))?
            .into_iter()
            .next()
    };
    let cfg = server::smtp::checks::ChecksConfig {
        spf_reject: c.spf_reject,
        dmarc_reject: c.dmarc_reject,
        dmarc_quarantine: c.dmarc_quarantine,
        tempfail_on_dns_error: c.tempfail_on_dns_error,
        null_mx_reject: c.null_mx_reject,
        trusted_arc_sealers: c.trusted_arc_sealers.clone(),
        resolver,
        timeout: Duration::from_secs(c.timeout.max(1)),
    };
    let checks = server::smtp::checks::Checks::new(cfg, &loaded.hostname)
        .map_err(|e| format!("checks: {e}"))?;
    // Forwarded mail is ARC-sealed with the primary domain's key.
    Ok(match loaded.config.domains.first() {
        Some(primary) => checks.with_arc_sealer(signer, primary),
        None => checks,
    })
}

fn outbound_worker(
    loaded: &Loaded,
    store: Arc<dyn Store>,
    bounces: Arc<dyn delivery::worker::BounceRoute>,
    signer: Arc<delivery::dkim::Signer>,
) -> Result<Arc<delivery::worker::Worker>, String> {
    let r = &loaded.config.relay;
    let helo = if r.helo_name.is_empty() {
        loaded.hostname.clone()
    } else {
        r.helo_name.clone()
    };
    let cfg = delivery::worker::WorkerConfig {
        helo,
        retry_initial: Duration::from_secs(r.retry_initial),
        retry_max: Duration::from_secs(r.retry_max),
        max_queue_lifetime: Duration::from_secs(r.max_queue_lifetime),
        max_connections: r.max_connections,
        max_connections_per_domain: r.max_connections_per_domain,
        source_address: r.source_address.parse().ok(),
        delay_warning: Duration::from_secs(r.delay_warning),
    };
    let routing: Arc<dyn delivery::worker::Routing> =
        match crate::config::smarthost(&r.smarthost) {
            Some((host, port)) => {
                let auth = r.smarthost_auth.0.split_once(':').map(|(u, p)| {
                    delivery::client::Credentials {
                        user: u.to_string(),
                        password: p.to_string(),
                    }
                });
                // AUTH only ever over verified TLS.
                let verified = !r.smarthost_tls.is_empty() || auth.is_some();
                let tls = if verified {
                    let roots = relay_roots(loaded)?;
                    delivery::client::TlsPolicy::Verified {
                        roots: Arc::new(roots),
                        implicit: r.smarthost_tls == "implicit",
                    }
                } else {
                    delivery::client::TlsPolicy::Opportunistic
                };
                Arc::new(delivery::worker::Smarthost {
                    host,
                    port,
                    tls,
                    auth,
                })
            }
            None => {
                let resolver = if r.resolver.is_empty() {
                    None
                } else {
                    addresses("relay.resolver", std::slice::from_ref(&r.resolver))?
                        .into_iter()
                        .next()
                };
                let router = delivery::route::Router::new(delivery::route::RouterConfig {
                    resolver,
                    port: r.port,
                    smarthost: None,
                    timeout: delivery::route::DEFAULT_TIMEOUT,
                    ours: vec![loaded.hostname.to_ascii_lowercase()],
                })
                .map_err(|e| format!("relay.resolver: {e}"))?;
                Arc::new(router)
            }
        };
    // [relay] require_tls: verified STARTTLS for the domains listed.
    let routing: Arc<dyn delivery::worker::Routing> = if r.require_tls.is_empty() {
        routing
    } else {
        Arc::new(delivery::worker::RequireTls {
            inner: routing,
            domains: r
                .require_tls
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            roots: Arc::new(relay_roots(loaded)?),
        })
    };
    Ok(Arc::new(
        delivery::worker::Worker::new(store, cfg, routing, bounces)
            .with_dkim(signer)
            .with_lease(Duration::from_secs(r.queue_lease)),
    ))
}

/// The trust anchors of verified outbound TLS: `[relay] ca_file`, or the
/// system's bundle.
fn relay_roots(loaded: &Loaded) -> Result<delivery::client::RootCertStore, String> {
    let r = &loaded.config.relay;
    let ca = if r.ca_file.as_os_str().is_empty() {
        std::path::PathBuf::from(crate::config::SYSTEM_CA_FILE)
    } else {
        loaded.path(&r.ca_file)
    };
    delivery::client::roots_from_pem(&ca).map_err(|e| format!("relay.ca_file: {e}"))
}

/// The certificates of `[tls]`, or the quick start's self-signed one.
fn load_tls(loaded: &Loaded) -> Result<Arc<Tls>, String> {
    let t = &loaded.config.tls;
    let mut sources = Vec::new();
    if t.cert.as_os_str().is_empty() {
        let (source, made) = server::tls::self_signed(&loaded.data_dir, &loaded.hostname)?;
        if made {
            tracing::info!(path = %source.cert.display(), "made a self-signed TLS certificate");
        }
        sources.push(source);
    } else {
        sources.push(CertSource {
            hostnames: Vec::new(),
            cert: loaded.path(&t.cert),
            key: loaded.path(&t.key),
        });
    }
    for e in &t.sni {
        sources.push(CertSource {
            hostnames: e.hostnames.clone(),
            cert: loaded.path(&e.cert),
            key: loaded.path(&e.key),
        });
    }
    let cert_path = sources
        .first()
        .map(|s| s.cert.display().to_string())
        .unwrap_or_default();
    let tls = Tls::new(sources, Duration::from_secs(t.handshake_timeout))?;
    tracing::info!(cert = %cert_path, sha256 = %tls.fingerprint(), "TLS certificate loaded");
    Ok(tls)
}

async fn serve(loaded: Loaded) -> Result<(), String> {
    let c = &loaded.config;
    let directory = open_directory_async(&loaded)
        .await
        .map_err(|e| e.to_string())?;
    let store = open_store_async(&loaded).await.map_err(|e| e.to_string())?;
    let tls = load_tls(&loaded)?;
    let presence = PresenceRegistry::new();
    let quota = server::quota::QuotaBook::start(
        Arc::clone(&directory),
        server::quota::QuotaDefaults {
            storage: c.quota.storage,
            messages: c.quota.messages,
        },
    )
    .await;
    let metrics = Arc::new(Metrics::default());
    // One Authenticator for every protocol: its throttling follows a
    // guesser from SMTP to IMAP to POP3.
    // On PostgreSQL the SRS secret, DKIM keys and failed-login counts are
    // the database's, so every node agrees (a node whose srs_secret
    // differs stops here).
    let shared = crate::shared::open(&loaded).await?;
    let policy = server::throttle::ThrottlePolicy {
        max_delay: Duration::from_secs(c.auth.max_delay),
        lockout_failures: c.auth.lockout_failures,
        lockout: Duration::from_secs(c.auth.lockout_secs),
    };
    let auth = match &shared {
        Some(shared) => Authenticator::with_throttle(
            Arc::clone(&directory),
            Box::new(crate::shared_throttle::SharedThrottle::start(
                policy,
                shared.clone(),
            )),
        ),
        None => Authenticator::with_policy(Arc::clone(&directory), policy),
    };
    let srs = Arc::new(
        crate::shared::srs(
            &loaded.data_dir,
            &c.relay.srs_secret.0,
            shared.as_ref(),
            directory.primary_domain(),
        )
        .await?,
    );
    let shared_for_presence = shared.clone();
    let signer = crate::shared::dkim_signer(&loaded, shared).await?;
    let bounces = Arc::new(server::bounce::DirectoryBounces {
        directory: Arc::clone(&directory),
        srs: Some(Arc::clone(&srs)),
    });
    // SEND/SOML/SAML: on PostgreSQL a session on another node counts.
    let smtp_presence: Arc<dyn server::presence::Presence> = match &shared_for_presence {
        Some(shared) => crate::cluster_presence::ClusterPresence::start(
            presence.clone(),
            shared.clone(),
            crate::commands::backend_config(&loaded)?.node_id,
            std::time::Duration::from_secs(loaded.config.store.presence_lease),
        ),
        None => presence.clone(),
    };
    // Issue 19: big messages are spooled while they arrive; what a
    // previous process left in the spool is removed now.
    let spool_dir = loaded.data_dir.join("spool");
    let spool = Arc::new(
        server::spool::Spool::open(&spool_dir, c.store.spool_threshold)
            .map_err(|e| format!("cannot prepare the spool {}: {e}", spool_dir.display()))?,
    );
    let mut smtp_cfg = smtp_config(&loaded)?;
    smtp_cfg.spool = Some(Arc::clone(&spool));
    let ctx = Arc::new(SmtpContext {
        config: smtp_cfg,
        directory: Arc::clone(&directory),
        store: store.clone(),
        presence: smtp_presence,
        quota: Arc::clone(&quota),
        memory: MemoryBudget::new(c.smtp.max_inflight_data),
        metrics: Arc::clone(&metrics),
        tls: Some(Arc::clone(&tls)),
        auth: Arc::clone(&auth),
        send_rate: Default::default(),
        srs: Some(srs),
        bounces: Some(bounces.clone()),
        checks: if c.checks.enabled {
            Some(Arc::new(checks(&loaded, Arc::clone(&signer))?))
        } else {
            None
        },
    });

    let mut smtp_listeners = bind_all("smtp.listen", &c.smtp.listen, Role::Mta).await?;
    smtp_listeners.extend(bind_all("smtp.submission", &c.smtp.submission, Role::Submission).await?);
    smtp_listeners
        .extend(bind_all("smtp.submissions", &c.smtp.submissions, Role::Submissions).await?);
    let admin_listeners = if c.admin.listen.is_empty() {
        Vec::new()
    } else {
        bind_sockets("admin.listen", std::slice::from_ref(&c.admin.listen)).await?
    };

    let (trigger, shutdown) = Shutdown::new();
    let tracker = ConnectionTracker::new();
    let mut tasks = Vec::new();
    for l in smtp_listeners {
        tasks.push(tokio::spawn(server::smtp::serve(
            l,
            Arc::clone(&ctx),
            tracker.clone(),
            shutdown.clone(),
        )));
    }
    let worker = outbound_worker(&loaded, store.clone(), bounces, Arc::clone(&signer))?;
    let status: Arc<dyn admin::Status> = Arc::new(AdminStatus::new(
        &loaded,
        Arc::clone(&metrics),
        tracker.clone(),
        store.clone(),
        Arc::clone(&auth),
        Arc::clone(&worker.stats),
    )?);
    for l in admin_listeners {
        tasks.push(tokio::spawn(admin::serve(
            l,
            Arc::clone(&status),
            shutdown.clone(),
        )));
    }
    let pop3_ctx = Arc::new(server::pop3::Pop3Context {
        config: pop3_config(&loaded)?,
        store: store.clone(),
        auth: Arc::clone(&auth),
        tls: Some(Arc::clone(&tls)),
        metrics: Arc::clone(&metrics),
    });
    let mut pop3_listeners = bind_all("pop3.listen", &c.pop3.listen, Role::Pop3).await?;
    pop3_listeners.extend(bind_all("pop3.tls_listen", &c.pop3.tls_listen, Role::Pop3s).await?);
    for l in pop3_listeners {
        tasks.push(tokio::spawn(server::pop3::serve(
            l,
            Arc::clone(&pop3_ctx),
            tracker.clone(),
            shutdown.clone(),
        )));
    }
    let mut imap_config = server::imap::ImapConfig::new(loaded.hostname.clone());
    imap_config.idle_timeout = Duration::from_secs(c.imap.idle_timeout);
    imap_config.idle_keepalive = Duration::from_secs(c.imap.idle_keepalive);
    imap_config.max_literal_size = c.imap.max_literal_size;
    imap_config.max_mailboxes = c.imap.max_mailboxes;
    imap_config.terminal_max_chars = c.imap.terminal_max_chars;
    imap_config.notify_queue = c.imap.notify_queue;
    imap_config.metadata_max_size = c.imap.metadata_max_size;
    imap_config.metadata_max_entries = c.imap.metadata_max_entries;

    imap_config.connections = ConnectionLimits {
        max_total: c.imap.max_connections,
        max_per_ip: c.imap.max_connections_per_ip,
    };
    imap_config.plaintext_networks = networks("local_networks", &c.local_networks)?;
    imap_config.spool = Some(Arc::clone(&spool));
    imap_config.literals = server::MemoryBudget::new(c.imap.max_inflight_literals);
    let imap_ctx = server::imap::ImapContext::new(
        imap_config,
        store.clone(),
        Arc::clone(&auth),
        Some(Arc::clone(&tls)),
        Arc::clone(&metrics),
        Arc::clone(&presence),
        Arc::clone(&quota),
    );
    let mut imap_listeners = bind_all("imap.listen", &c.imap.listen, Role::Imap).await?;
    imap_listeners.extend(bind_all("imap.tls_listen", &c.imap.tls_listen, Role::Imaps).await?);
    for l in imap_listeners {
        tasks.push(tokio::spawn(server::imap::serve(
            l,
            Arc::clone(&imap_ctx),
            tracker.clone(),
            shutdown.clone(),
        )));
    }
    // Tombstones older than the retention go (RFC 7162 3.2.5.2 covers
    // clients that resync later); a trim at start and then periodically.
    if c.store.tombstone_retention > 0 {
        let retention = Duration::from_secs(c.store.tombstone_retention);
        let mut stop = shutdown.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let every = retention.clamp(TRIM_INTERVAL_MIN, TRIM_INTERVAL_MAX);
            loop {
                let cut = store::rules::now()
                    .saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
                match store.trim_tombstones(cut).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(trimmed = n, "tombstones trimmed"),
                    Err(e) => tracing::warn!(error = %e, "tombstone trim failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait() => break,
                }
            }
        }));
    }
    // The outbound queue worker (issue 12): mail for other domains leaves.
    let worker_task = {
        let mut stop = shutdown.clone();
        tokio::spawn(Arc::clone(&worker).run(async move { stop.wait().await }))
    };
    tracing::info!(hostname = %loaded.hostname, data_dir = %loaded.data_dir.display(), "mailroom ready");

    wait_for_signal(&tls).await?;
    tracing::info!("shutting down: no new connections; finishing transactions in flight");
    trigger.trigger();
    for t in tasks {
        let _ = t.await;
    }
    // A delivery run in flight ends within the grace period; its rows'
    // leases bring them back after a restart otherwise.
    let _ = tokio::time::timeout(Duration::from_secs(c.shutdown_timeout), worker_task).await;
    let grace = Duration::from_secs(c.shutdown_timeout);
    if tokio::time::timeout(grace, tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            left = tracker.active(),
            "shutdown timeout reached; closing remaining sessions"
        );
    }
    drop(ctx);
    let stats = store.stats();
    // The benchmark reads this line: fsyncs per message = commits / ops.
    tracing::info!(
        "store statistics: commits={} ops={}",
        stats.commits,
        stats.ops
    );
    tracing::info!("stopped");
    Ok(())
}

/// Bounds of the interval between tombstone trims: at most hourly work
/// for the default retention, at least a second apart for a tiny one.
const TRIM_INTERVAL_MAX: Duration = Duration::from_secs(3600);
const TRIM_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// What the admin port reports.
struct AdminStatus {
    metrics: Arc<Metrics>,
    tracker: ConnectionTracker,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    outbound: Arc<delivery::worker::WorkerStats>,
    data_dir: std::path::PathBuf,
    min_free_disk: u64,
    /// Every address served, with its config key.
    listeners: Vec<(&'static str, std::net::SocketAddr)>,
}

impl AdminStatus {
    fn new(
        loaded: &Loaded,
        metrics: Arc<Metrics>,
        tracker: ConnectionTracker,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        outbound: Arc<delivery::worker::WorkerStats>,
    ) -> Result<AdminStatus, String> {
        let c = &loaded.config;
        let mut listeners = Vec::new();
        let admin = std::slice::from_ref(&c.admin.listen);
        let served: [(&'static str, &[String]); 8] = [
            ("smtp.listen", &c.smtp.listen),
            ("smtp.submission", &c.smtp.submission),
            ("smtp.submissions", &c.smtp.submissions),
            ("pop3.listen", &c.pop3.listen),
            ("pop3.tls_listen", &c.pop3.tls_listen),
            ("imap.listen", &c.imap.listen),
            ("imap.tls_listen", &c.imap.tls_listen),
            (
                "admin.listen",
                if c.admin.listen.is_empty() {
                    &[]
                } else {
                    admin
                },
            ),
        ];
        for (key, list) in served {
            for addr in addresses(key, list)? {
                listeners.push((key, addr));
            }
        }
        Ok(AdminStatus {
            metrics,
            tracker,
            store,
            auth,
            outbound,
            data_dir: loaded.data_dir.clone(),
            min_free_disk: c.admin.min_free_disk,
            listeners,
        })
    }
}

impl admin::Status for AdminStatus {
    fn health(&self) -> admin::Health {
        let mut h = admin::Health::default();
        let (problem, check) = self.store.health();
        h.problems.extend(problem);
        h.checks.push(check);
        let (problem, check) = crate::health::disk(&self.data_dir, self.min_free_disk);
        h.problems.extend(problem);
        h.checks.push(check);
        match crate::health::listening() {
            Some(up) => {
                for (key, addr) in &self.listeners {
                    // A port-0 listener (tests) has no fixed address to find.
                    if addr.port() == 0 || up.contains(addr) {
                        h.checks.push(format!("listener {key} {addr}: listening"));
                    } else {
                        h.problems.push(format!("{key} {addr} is not listening"));
                        h.checks.push(format!("listener {key} {addr}: down"));
                    }
                }
            }
            None => h
                .checks
                .push("listeners: cannot be checked on this system".to_string()),
        }
        h
    }

    fn metrics(&self) -> String {
        use server::metrics::{Live, Sample, load};
        let stats = self.store.stats();
        let live = Live {
            samples: vec![
                Sample::Gauge(
                    "mailroom_connections",
                    "Live connections",
                    self.tracker.active() as u64,
                ),
                Sample::Counter(
                    "mailroom_store_commits",
                    "Store commits (one fsync each)",
                    stats.commits,
                ),
                Sample::Counter(
                    "mailroom_store_writes",
                    "Store write operations committed",
                    stats.ops,
                ),
                Sample::Gauge(
                    "mailroom_queue_size",
                    "Rows (remote recipients) in the outbound queue",
                    load(&self.outbound.queue_size),
                ),
                Sample::Gauge(
                    "mailroom_queue_oldest_age_seconds",
                    "Age of the oldest row in the outbound queue",
                    load(&self.outbound.oldest_age),
                ),
                Sample::Counter(
                    "mailroom_outbound_delivered",
                    "Remote recipients delivered by the queue worker",
                    load(&self.outbound.delivered),
                ),
                Sample::Counter(
                    "mailroom_outbound_deferred",
                    "Remote delivery attempts deferred (temporary failures)",
                    load(&self.outbound.deferred),
                ),
                Sample::Counter(
                    "mailroom_outbound_failed",
                    "Remote recipients failed (permanent, or past the queue lifetime)",
                    load(&self.outbound.failed),
                ),
                Sample::Counter(
                    "mailroom_outbound_dsns",
                    "DSNs made by the queue worker (failures, delays, relayed)",
                    load(&self.outbound.dsns),
                ),
                Sample::Counter(
                    "mailroom_logins_throttled",
                    "Logins refused because their address is locked out, every protocol",
                    load(&self.auth.stats.throttled),
                ),
                Sample::Counter(
                    "mailroom_login_delay_milliseconds",
                    "Delay imposed on failed logins, in all",
                    load(&self.auth.stats.delay_ms),
                ),
            ],
            batches: stats.batches,
        };
        self.metrics.render(live)
    }
}

/// Binds every address of a listener key for `role`; an address that
/// cannot be bound stops the start with an error naming the key.
async fn bind_all(key: &str, list: &[String], role: Role) -> Result<Vec<Listener>, String> {
    let sockets = bind_sockets(key, list).await?;
    Ok(sockets
        .into_iter()
        .map(|socket| Listener { socket, role })
        .collect())
}

async fn bind_sockets(key: &str, list: &[String]) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::new();
    for addr in addresses(key, list)? {
        let socket = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{key}: cannot bind {addr}: {e}"))?;
        tracing::info!(%addr, key, "listening");
        out.push(socket);
    }
    Ok(out)
}

/// Waits for SIGTERM or SIGINT; SIGHUP on the way reloads the TLS
/// certificates (only), keeping the old ones if the new files are bad.
async fn wait_for_signal(tls: &Tls) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!(sha256 = %tls.fingerprint(), "SIGHUP: TLS certificates reloaded"),
                Err(e) => tracing::warn!(error = %e, "SIGHUP: TLS certificates not reloaded; keeping the old ones"),
            },
        }
    }
}

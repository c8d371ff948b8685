//! The administration subcommands (SPEC 7). They open the same store and
//! directory as the running server, through the same factories (the
//! backend of `[store] backend`; SQLite allows a second process), so their
//! changes take effect at once, without a restart.

use std::io::Read;
use std::sync::Arc;

use backends::{BackendConfig, OpenError};
use directory::{Directory, DirectoryConfig, DirectoryError, Resolution};
use store::{Store, StoreError, StoreOptions};

use crate::cli::{Failure, exit};
use crate::config::Loaded;
use crate::datadir::Missing;

/// A password on stdin longer than this is refused rather than read on.
pub const MAX_PASSWORD_INPUT: u64 = 4096;

pub fn directory_config(loaded: &Loaded) -> DirectoryConfig {
    let c = &loaded.config;
    DirectoryConfig {
        domains: c.domains.clone(),
        catch_all: c.catch_all.clone(),
        argon2_m_cost: c.auth.argon2_memory_kib,
        argon2_t_cost: c.auth.argon2_iterations,
        argon2_p_cost: c.auth.argon2_parallelism,
        max_concurrent_hashes: c.auth.max_concurrent_hashes,
        scram_iterations: c.auth.scram_iterations,
        scram: c.auth.scram,
    }
}

/// What the factories need: the backend of `[store]`, the data directory,
/// the store's tunables and the directory's settings.
pub fn backend_config(loaded: &Loaded) -> Result<BackendConfig, String> {
    let s = &loaded.config.store;
    Ok(BackendConfig {
        backend: s.backend.parse()?,
        url: s.url.0.clone(),
        pool_size: s.pool_size,
        statement_timeout: std::time::Duration::from_secs(s.statement_timeout),
        node_id: if s.node_id.is_empty() {
            backends::postgres::default_node_id()
        } else {
            s.node_id.clone()
        },
        data_dir: loaded.data_dir.clone(),
        store: StoreOptions {
            group_commit_max: s.group_commit_max,
            ..StoreOptions::default()
        },
        directory: directory_config(loaded),
    })
}

/// Opens the configured directory; the data directory must have been
/// prepared ([`crate::datadir::prepare`]). Async: PostgreSQL connects on
/// the caller's runtime.
pub async fn open_directory_async(loaded: &Loaded) -> Result<Arc<dyn Directory>, OpenError> {
    let config = backend_config(loaded).map_err(|e| OpenError::Store(StoreError::Invalid(e)))?;
    backends::open_directory_async(&config).await
}

/// Opens the configured store.
pub async fn open_store_async(loaded: &Loaded) -> Result<Arc<dyn Store>, OpenError> {
    let config = backend_config(loaded).map_err(|e| OpenError::Store(StoreError::Invalid(e)))?;
    backends::open_store_async(&config).await
}

/// `mailroom backup DIR`.
pub fn backup(loaded: &Loaded, dir: &std::path::Path) -> Result<(), String> {
    let config = backend_config(loaded)?;
    let files = backends::backup::backup(&config, dir)?;
    println!(
        "backed up {} files of {} to {}",
        files.len(),
        loaded.data_dir.display(),
        dir.display()
    );
    Ok(())
}

/// The database's shared state (PostgreSQL) with a runtime to use it
/// on; None on SQLite.
fn shared_state(
    loaded: &Loaded,
) -> Result<Option<(tokio::runtime::Runtime, backends::postgres::SharedState)>, String> {
    if backend_config(loaded)?.backend != backends::Backend::Postgres {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let shared = rt.block_on(crate::shared::open(loaded))?;
    Ok(shared.map(|s| (rt, s)))
}

/// `mailroom dkim generate DOMAIN`: one of our domains only, since a key
/// for another would sign nothing (only mail From our domains is signed).
pub fn dkim_generate(
    loaded: &Loaded,
    domain: &str,
    selector: Option<&str>,
    algorithm: &str,
) -> Result<(), String> {
    use delivery::dkim::Algorithm;
    let algorithm = Algorithm::parse(algorithm)
        .ok_or_else(|| format!("--algorithm {algorithm:?}: rsa or ed25519"))?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !loaded
        .config
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        return Err(format!("{domain} is not one of our domains"));
    }
    let key = match shared_state(loaded)? {
        // On PostgreSQL the key goes into the database: every node signs
        // with it (within `shared::DKIM_REFRESH`).
        Some((rt, shared)) => {
            let key =
                delivery::dkim::make(&domain, selector, algorithm).map_err(|e| e.to_string())?;
            rt.block_on(crate::shared::dkim_store(&shared, &key))?;
            key
        }
        None => delivery::dkim::generate(&loaded.data_dir, &domain, selector, algorithm)
            .map_err(|e| e.to_string())?,
    };
    println!("Publish this TXT record, then mail From {domain} is signed with it:");
    println!("{}. IN TXT \"{}\"", key.record_name(), key.record());
    Ok(())
}

/// `mailroom dkim list`: each key, its record, and whether it signs.
pub fn dkim_list(loaded: &Loaded) -> Result<(), String> {
    let keys = match shared_state(loaded)? {
        Some((rt, shared)) => rt.block_on(crate::shared::dkim_keys(&shared))?,
        None => delivery::dkim::list(&loaded.data_dir).map_err(|e| e.to_string())?,
    };
    for k in &keys {
        let state = if delivery::dkim::signs(&keys, k) {
            "signs"
        } else {
            "older"
        };
        println!(
            "{}\t{}\t{}\t{}\t{}. IN TXT \"{}\"",
            k.domain,
            k.selector,
            k.algorithm.name(),
            state,
            k.record_name(),
            k.record()
        );
    }
    Ok(())
}

/// Test hook: `mailroom migrate` aborts (as a kill -9 would end it)
/// right after committing this many batches (unless that finished the
/// copy), so an end-to-end test can check that the rerun resumes. Never
/// set outside tests.
pub const MIGRATE_ABORT_ENV: &str = "MAILROOM_TEST_MIGRATE_ABORT_AFTER";

/// `mailroom migrate --to postgres://...` (SPEC 7): the configured
/// embedded data directory into an empty PostgreSQL database, or on
/// into the one an interrupted run of the same source left
/// (`store_pg::copy_from_sqlite`, in batches of `batch` rows), with a
/// progress bar on stderr and the counts at the end.
pub fn migrate(loaded: &Loaded, to: &str, batch: usize) -> Result<(), String> {
    let mut config = backend_config(loaded)?;
    if config.backend != backends::Backend::Sqlite {
        return Err(
            "migrate copies the embedded (sqlite) data directory of the config; its \
             [store] backend is already \"postgres\""
                .to_string(),
        );
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err("--to: a postgres://user:password@host:port/dbname URL".to_string());
    }
    crate::datadir::prepare(&loaded.data_dir, Missing::Refuse, &mut |note| {
        eprintln!("mailroom: {note}");
    })?;
    // Opening them brings both SQLite schemas up to this build's, which
    // is what the copy reads.
    drop(backends::open_store(&config).map_err(|e| e.to_string())?);
    drop(backends::open_directory(&config).map_err(|e| e.to_string())?);
    let mut shared = Vec::new();
    let srs = loaded.data_dir.join("srs.key");
    match std::fs::read_to_string(&srs) {
        Ok(s) if !s.trim().is_empty() => {
            shared.push(("srs_secret".to_string(), s.trim().to_string()))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", srs.display())),
    }
    for key in delivery::dkim::list(&loaded.data_dir).map_err(|e| e.to_string())? {
        shared.push((format!("dkim/{}", key.storage_name()), key.to_text()));
    }
    config.url = to.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let identity = std::fs::canonicalize(&loaded.data_dir)
        .unwrap_or_else(|_| loaded.data_dir.clone())
        .display()
        .to_string();
    let source = backends::postgres::CopySource {
        store_db: &loaded.data_dir.join("store.db"),
        directory_db: &loaded.data_dir.join(backends::DIRECTORY_FILE),
        shared,
        identity,
        batch,
    };
    let abort_after: Option<u64> = std::env::var(MIGRATE_ABORT_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let bar = MigrateBar::new();
    let mut progress = |p: backends::postgres::CopyProgress<'_>| {
        bar.show(&p);
        if !p.finished && abort_after.is_some_and(|n| p.batches >= n) {
            eprintln!(
                "mailroom migrate: {MIGRATE_ABORT_ENV}: aborting after batch {}",
                p.batches
            );
            std::process::abort();
        }
    };
    let n = rt
        .block_on(backends::postgres::copy_from_sqlite(
            &config.pg_options(),
            source,
            &mut progress,
        ))
        .map_err(|e| {
            format!("migrate: {e} (what was committed stays; rerun the same command to resume)")
        })?;
    bar.finish();
    if n.already_complete {
        println!(
            "{} was already migrated to this database: nothing to do",
            loaded.data_dir.display()
        );
        return Ok(());
    }
    if let Some(step) = &n.resumed_at {
        println!("resumed the interrupted migrate at {step}");
    }
    println!(
        "migrated {} to PostgreSQL: {} accounts, {} mailboxes, {} messages ({} bodies), {} \
         tombstones, {} subscriptions, {} queued, {} users, {} aliases, {} lists, {} forwards, \
         {} shared values",
        loaded.data_dir.display(),
        n.accounts,
        n.mailboxes,
        n.messages,
        n.bodies,
        n.tombstones,
        n.subscriptions,
        n.queue,
        n.users,
        n.aliases,
        n.lists,
        n.forwards,
        n.shared
    );
    println!("now set [store] backend = \"postgres\" and url in the config, and start the server");
    Ok(())
}

/// `mailroom migrate`'s progress on stderr: a bar on a terminal, a line
/// per table otherwise.
struct MigrateBar {
    bar: Option<indicatif::ProgressBar>,
    last: std::cell::RefCell<String>,
}

impl MigrateBar {
    fn new() -> MigrateBar {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "migrate {msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        MigrateBar {
            bar,
            last: std::cell::RefCell::new(String::new()),
        }
    }

    fn show(&self, p: &backends::postgres::CopyProgress<'_>) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(p.total);
                bar.set_position(p.done);
                bar.set_message(p.what.to_string());
            }
            None => {
                let mut last = self.last.borrow_mut();
                if *last != p.what {
                    eprintln!("mailroom migrate: {}: {}/{} rows", p.what, p.done, p.total);
                    *last = p.what.to_string();
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// `mailroom restore DIR`: needs no data directory (it makes one).
pub fn restore(loaded: &Loaded, dir: &std::path::Path) -> Result<(), String> {
    let config = backend_config(loaded)?;
    let files = backends::backup::restore(&config, dir)?;
    println!(
        "restored {} files into {}",
        files.len(),
        loaded.data_dir.display()
    );
    Ok(())
}

pub struct Ctx {
    dir: Arc<dyn Directory>,
    store: Arc<dyn Store>,
    rt: tokio::runtime::Runtime,
    max_message_size: usize,
    /// `[store] spool_threshold`: `deliver` spools a bigger message.
    spool_threshold: usize,
    /// Ours: Authentication-Results claiming it are removed on delivery.
    hostname: String,
    /// Where `deliver` finds the SRS key for forwarded copies
    /// (`[relay] srs_secret`, else the data directory's or, on
    /// PostgreSQL, the database's), read only when a delivery forwards.
    data_dir: std::path::PathBuf,
    srs_secret: String,
    backend: BackendConfig,
}

impl Ctx {
    /// Opens the store and directory of `loaded`; a missing data directory
    /// is created only when `missing` says so (SPEC 7). Failures carry the
    /// code `mailroom deliver` exits with: configuration, or temporary when
    /// the store is busy or the disk fails.
    pub fn open(loaded: &Loaded, missing: Missing) -> Result<Ctx, Failure> {
        crate::datadir::prepare(&loaded.data_dir, missing, &mut |note| {
            eprintln!("mailroom: {note}");
        })
        .map_err(|e| Failure::new(exit::CONFIG, format!("{e} [{}]", loaded.source)))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(exit::TEMP_FAIL, format!("cannot start the runtime: {e}")))?;
        let failure = |e: OpenError| {
            let code = if e.is_temporary() {
                exit::TEMP_FAIL
            } else {
                exit::CONFIG
            };
            Failure::new(code, e.to_string())
        };
        // On the CLI's runtime: PostgreSQL's listener runs there, while
        // each command's block_on runs.
        let dir = rt.block_on(open_directory_async(loaded)).map_err(failure)?;
        let store = rt.block_on(open_store_async(loaded)).map_err(failure)?;
        Ok(Ctx {
            dir,
            store,
            rt,
            max_message_size: loaded.config.smtp.max_message_size,
            spool_threshold: loaded.config.store.spool_threshold,
            hostname: loaded.hostname.clone(),
            data_dir: loaded.data_dir.clone(),
            srs_secret: loaded.config.relay.srs_secret.0.clone(),
            backend: backend_config(loaded).map_err(|e| Failure::new(exit::CONFIG, e))?,
        })
    }

    /// The SRS reverse-path of forwarded copies from `sender`, when there
    /// are any and the sender is not ours (see server::smtp::data).
    fn forward_sender(&self, sender: &str, forwards: bool) -> Result<Option<String>, Failure> {
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return Ok(None);
        };
        if !forwards || self.dir.is_local_domain(domain) {
            return Ok(None);
        }
        let srs = self
            .rt
            .block_on(async {
                let shared = crate::shared::open_backend(&self.backend).await?;
                let primary = self.dir.primary_domain();
                crate::shared::srs(&self.data_dir, &self.srs_secret, shared.as_ref(), primary).await
            })
            .map_err(|e| Failure::new(exit::TEMP_FAIL, e))?;
        Ok(Some(srs.forward(sender, delivery::srs::today())))
    }

    /// Qualifies a bare local part with the primary domain (SPEC 7).
    fn qualify(&self, address: &str) -> String {
        if address.contains('@') {
            address.to_string()
        } else {
            format!("{address}@{}", self.dir.primary_domain())
        }
    }

    pub fn user_add(
        &self,
        address: &str,
        name: Option<&str>,
        password: &str,
    ) -> Result<(), String> {
        let canonical = self
            .rt
            .block_on(self.dir.add_user(&self.qualify(address), name, password))
            .map_err(|e| e.to_string())?;
        self.rt
            .block_on(self.store.ensure_account(canonical.clone()))
            .map_err(|e| e.to_string())?;
        println!("added {canonical}");
        Ok(())
    }

    /// `user del`: the directory entry first, so no new mail is accepted
    /// for the address, then the mailboxes. A crash between the two (or a
    /// store error) leaves an account that no directory entry reaches;
    /// running the command again finds it and finishes the job, where it
    /// once answered "does not exist" and left the mail behind.
    pub fn user_del(&self, address: &str) -> Result<(), String> {
        let address = self.qualify(address);
        let canonical = self.dir.canonical(&address).map_err(|e| e.to_string())?;
        let in_directory = match self.rt.block_on(self.dir.delete_user(&canonical)) {
            Ok(()) => true,
            Err(DirectoryError::NotFound(_)) => false,
            Err(e) => return Err(e.to_string()),
        };
        // Not a user: only an account that nothing delivers to (left by an
        // interrupted `user del`) is removed; the implicit postmaster's,
        // say, is live and stays.
        if !in_directory && self.delivered_to(&canonical)? {
            return Err(DirectoryError::NotFound(canonical).to_string());
        }
        let in_store = match self
            .rt
            .block_on(self.store.delete_account(canonical.clone()))
        {
            Ok(()) => true,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => {
                return Err(format!(
                    "{canonical} is out of the directory but its mailboxes remain ({e}): \
                     run `mailroom user del {canonical}` again"
                ));
            }
        };
        if !in_directory && !in_store {
            return Err(DirectoryError::NotFound(canonical).to_string());
        }
        if !in_directory {
            eprintln!(
                "mailroom: {canonical} was already out of the directory; its mailboxes are deleted now"
            );
        }
        println!("deleted {canonical}");
        Ok(())
    }

    /// Whether mail to `account` (canonical) is delivered to its own
    /// mailboxes now.
    fn delivered_to(&self, account: &str) -> Result<bool, String> {
        let local = match self.rt.block_on(self.dir.resolve(account)) {
            Ok(Resolution::Deliver { local, .. } | Resolution::Forward { local, .. }) => local,
            Ok(_) | Err(DirectoryError::InvalidAddress(_) | DirectoryError::UnknownDomain(_)) => {
                Vec::new()
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(local.iter().any(|a| a == account))
    }

    pub fn user_passwd(&self, address: &str, password: &str) -> Result<(), String> {
        self.rt
            .block_on(self.dir.set_password(&self.qualify(address), password))
            .map_err(|e| e.to_string())?;
        println!("password changed");
        Ok(())
    }

    /// `user quota ADDRESS SIZE [--messages N]`: the user's own limits
    /// (SPEC 7); `--messages` left out keeps the message limit as it was.
    pub fn user_quota(
        &self,
        address: &str,
        size: &str,
        messages: Option<u64>,
    ) -> Result<(), String> {
        let storage = parse_size(size)?;
        let address = self.qualify(address);
        let current = self
            .rt
            .block_on(self.dir.quota(&address))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no such user: {address}"))?;
        let quota = directory::UserQuota {
            storage: Some(storage),
            messages: messages.or(current.messages),
        };
        self.rt
            .block_on(self.dir.set_quota(&address, quota))
            .map_err(|e| e.to_string())?;
        println!("quota set");
        Ok(())
    }

    pub fn user_list(&self) -> Result<(), String> {
        for u in self
            .rt
            .block_on(self.dir.list_users())
            .map_err(|e| e.to_string())?
        {
            match u.full_name {
                Some(n) => println!("{}\t{}", u.address, n),
                None => println!("{}", u.address),
            }
        }
        Ok(())
    }

    pub fn alias_add(&self, address: &str, targets: &[String]) -> Result<(), String> {
        let targets: Vec<String> = targets.iter().map(|t| self.qualify(t)).collect();
        let warnings = self
            .rt
            .block_on(self.dir.add_alias(&self.qualify(address), &targets))
            .map_err(|e| e.to_string())?;
        warn(&warnings);
        Ok(())
    }

    pub fn alias_del(&self, address: &str, targets: &[String]) -> Result<(), String> {
        let targets: Vec<String> = targets.iter().map(|t| self.qualify(t)).collect();
        self.rt
            .block_on(self.dir.del_alias(&self.qualify(address), &targets))
            .map_err(|e| e.to_string())
    }

    pub fn alias_list(&self) -> Result<(), String> {
        for (a, targets) in self
            .rt
            .block_on(self.dir.aliases())
            .map_err(|e| e.to_string())?
        {
            println!("{a}\t{}", targets.join(" "));
        }
        Ok(())
    }

    pub fn list_add(&self, address: &str, members: &[String]) -> Result<(), String> {
        let members: Vec<String> = members.iter().map(|t| self.qualify(t)).collect();
        let warnings = self
            .rt
            .block_on(self.dir.add_list(&self.qualify(address), &members))
            .map_err(|e| e.to_string())?;
        warn(&warnings);
        Ok(())
    }

    pub fn list_del(&self, address: &str, members: &[String]) -> Result<(), String> {
        let members: Vec<String> = members.iter().map(|t| self.qualify(t)).collect();
        self.rt
            .block_on(self.dir.del_list(&self.qualify(address), &members))
            .map_err(|e| e.to_string())
    }

    pub fn list_show(&self) -> Result<(), String> {
        for (a, members) in self
            .rt
            .block_on(self.dir.lists())
            .map_err(|e| e.to_string())?
        {
            println!("{a}\t{}", members.join(" "));
        }
        Ok(())
    }

    pub fn forward_set(
        &self,
        address: &str,
        target: &str,
        keep: bool,
        refuse: bool,
    ) -> Result<(), String> {
        let (address, target) = (self.qualify(address), self.qualify(target));
        self.rt
            .block_on(self.dir.set_forward(&address, &target, keep, refuse))
            .map_err(|e| e.to_string())
    }

    pub fn forward_del(&self, address: &str) -> Result<(), String> {
        self.rt
            .block_on(self.dir.del_forward(&self.qualify(address)))
            .map_err(|e| e.to_string())
    }

    /// The account an address (or bare local part) names.
    fn account_of(&self, address: &str) -> Result<String, String> {
        self.rt
            .block_on(self.dir.find_login(&self.qualify(address)))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no such user: {address}"))
    }

    /// `mailroom import ADDRESS PATH`.
    pub fn import(
        &self,
        address: &str,
        path: &std::path::Path,
        format: Option<&str>,
        folder: Option<&str>,
    ) -> Result<(), String> {
        let account = self.account_of(address)?;
        let format = format
            .map(crate::transfer::run::Format::parse)
            .transpose()?;
        self.rt
            .block_on(self.store.ensure_account(account.clone()))
            .map_err(|e| e.to_string())?;
        // Big messages go through the spool as SMTP's do (issue 19); a
        // server may be running, so its spool is attached, not emptied.
        let spool_dir = self.data_dir.join("spool");
        let spool = server::spool::Spool::attach(&spool_dir, self.spool_threshold)
            .map_err(|e| format!("cannot use the spool {}: {e}", spool_dir.display()))?;
        let r = self.rt.block_on(crate::transfer::run::import(
            &*self.store,
            &account,
            path,
            format,
            folder,
            &std::sync::Arc::new(spool),
        ))?;
        println!(
            "imported {} messages into {} folders of {account}; {} already there, {} skipped",
            r.imported, r.folders, r.duplicates, r.skipped
        );
        Ok(())
    }

    /// `mailroom export ADDRESS DIR`.
    pub fn export(&self, address: &str, dir: &std::path::Path, format: &str) -> Result<(), String> {
        let account = self.account_of(address)?;
        let format = crate::transfer::run::Format::parse(format)?;
        let r = self.rt.block_on(crate::transfer::run::export(
            &*self.store,
            &account,
            dir,
            format,
        ))?;
        println!(
            "exported {} messages in {} folders of {account} to {}",
            r.messages,
            r.folders,
            dir.display()
        );
        if r.dropped_keywords > 0 {
            eprintln!(
                "mailroom: {} keywords not written (a Maildir folder holds at most {})",
                r.dropped_keywords,
                crate::transfer::maildir::MAX_KEYWORDS
            );
        }
        Ok(())
    }

    /// `queue list`: one line (or JSON object) per queued recipient.
    pub fn queue_list(&self, json: bool) -> Result<(), String> {
        let rows = self
            .rt
            .block_on(self.store.queue())
            .map_err(|e| e.to_string())?;
        for q in rows {
            if json {
                println!(
                    "{{\"id\":{},\"status\":\"{}\",\"attempts\":{},\"next_attempt\":{},\"created\":{},\"sender\":\"{}\",\"recipient\":\"{}\",\"last_error\":{}}}",
                    q.id,
                    json_escape(&q.status),
                    q.attempts,
                    q.next_attempt,
                    q.created,
                    json_escape(&q.sender),
                    json_escape(&q.recipient),
                    q.last_error
                        .as_deref()
                        .map(|e| format!("\"{}\"", json_escape(e)))
                        .unwrap_or_else(|| "null".into())
                );
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t<{}>\t{}\t{}",
                    q.id,
                    q.status,
                    q.attempts,
                    q.next_attempt,
                    q.sender,
                    q.recipient,
                    q.last_error.as_deref().unwrap_or("")
                );
            }
        }
        Ok(())
    }

    /// `queue show ID`: the entry and its message.
    pub fn queue_show(&self, id: i64) -> Result<(), String> {
        let rows = self
            .rt
            .block_on(self.store.queue())
            .map_err(|e| e.to_string())?;
        let q = rows
            .into_iter()
            .find(|q| q.id == id)
            .ok_or_else(|| format!("no queue entry {id}"))?;
        let body = self
            .rt
            .block_on(self.store.read_body(q.body))
            .map_err(|e| e.to_string())?;
        println!(
            "id: {}\nstatus: {}\nattempts: {}\nnext attempt: {}\ncreated: {}\nsender: <{}>\nrecipient: {}\nlast error: {}",
            q.id,
            q.status,
            q.attempts,
            q.next_attempt,
            q.created,
            q.sender,
            q.recipient,
            q.last_error.as_deref().unwrap_or("-")
        );
        // RFC 3461: what the sender asked to hear about this recipient.
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        println!(
            "notify: {}\norcpt: {}\nenvid: {}\nret: {}\ndelay warned: {}\n",
            dash(&q.notify),
            dash(&q.orcpt),
            dash(&q.envid),
            dash(&q.ret),
            if q.warned { "yes" } else { "no" }
        );
        use std::io::Write;
        let _ = std::io::stdout().write_all(&body);
        Ok(())
    }

    /// `queue retry ID|--all`.
    pub fn queue_retry(&self, id: Option<i64>) -> Result<(), String> {
        let n = self
            .rt
            .block_on(self.store.retry_queue(id))
            .map_err(|e| e.to_string())?;
        println!("{n} queue entries due now");
        Ok(())
    }

    /// `queue delete ID`.
    pub fn queue_delete(&self, id: i64) -> Result<(), String> {
        self.rt
            .block_on(self.store.delete_queue(id))
            .map_err(|e| e.to_string())
    }

    /// Local delivery from stdin, like an LDA (fetchmail's `mda`, fixtures,
    /// scripts). The message is durable when this returns Ok; each failure
    /// carries its sysexits code ([`exit`]).
    pub fn deliver(&self, address: &str, from: Option<&str>) -> Result<(), Failure> {
        let message = self.read_message(std::io::stdin().lock())?;
        let address = self.qualify(address);
        let resolution = match self.rt.block_on(self.dir.resolve(&address)) {
            Ok(r) => r,
            Err(e @ (DirectoryError::InvalidAddress(_) | DirectoryError::UnknownDomain(_))) => {
                return Err(Failure::new(exit::USAGE, e.to_string()));
            }
            Err(e) => return Err(Failure::new(exit::TEMP_FAIL, e.to_string())),
        };
        let (local, remote) = match resolution {
            Resolution::Deliver { local, remote } | Resolution::Forward { local, remote, .. } => {
                (local, remote)
            }
            Resolution::Refuse { to } => {
                return Err(Failure::new(
                    exit::NO_USER,
                    format!("{address} has moved to {to}"),
                ));
            }
            Resolution::Unknown => {
                return Err(Failure::new(
                    exit::NO_USER,
                    format!("{address}: no such user"),
                ));
            }
            Resolution::NotLocal => {
                return Err(Failure::new(
                    exit::NO_USER,
                    format!("{address} is not in a local domain"),
                ));
            }
        };
        // The same local delivery as SMTP's (the delivery crate): Return-
        // Path on local copies only, untrusted fields removed, loops
        // refused, all on the header section; a spooled tail goes from
        // its file to the store in chunks, as SMTP's does (issue 19).
        let server::spool::Message {
            head: body,
            tail,
            nul,
        } = message;
        let tail = tail.filter(|t| !t.is_empty());
        if delivery::check_hops(&body).is_err() {
            return Err(Failure::new(
                exit::DATA_ERR,
                "too many Received fields: mail loop (RFC 5321 6.3)",
            ));
        }
        let body = delivery::clean(body, &self.hostname, None);
        let mut targets = delivery::Targets::default();
        targets.add(&local, &[]);
        // Remote targets of a local address are forwarded: SRS, and the
        // address the mail came to as their ORCPT (RFC 3461 4.2), as SMTP
        // does.
        for r in remote {
            targets.add_remote(delivery::RemoteTarget {
                address: r,
                forwarded: true,
                notify: None,
                orcpt: Some(format!("rfc822;{}", proto_smtp::xtext_encode(&address))),
            });
        }
        let sender = from.unwrap_or("");
        let envelope = delivery::Envelope {
            forward_sender: self.forward_sender(sender, !targets.remote.is_empty())?,
            ..delivery::Envelope::default()
        };
        let Some(delivery) = delivery::build(&body, sender, None, &targets, now(), &envelope)
        else {
            return Ok(());
        };
        // Binary parts go to the mailbox in base64 (RFC 3516 4.3), a
        // spooled message's into another spool file, as SMTP's do.
        let writer = match &tail {
            Some(_) if nul => std::sync::Arc::new(self.attach_spool()?).writer(),
            _ => server::spool::SpoolWriter::in_memory(),
        };
        let stored = self.rt.block_on(server::binary::store_message(
            self.store.as_ref(),
            vec![delivery],
            tail,
            nul,
            writer,
        ));
        stored.map(|_| ()).map_err(|e| {
            // Disk full, busy, I/O: the MTA keeps the message and retries.
            let code = if e.is_temporary() {
                exit::TEMP_FAIL
            } else {
                exit::DATA_ERR
            };
            Failure::new(code, format!("delivery failed: {e}"))
        })?;
        Ok(())
    }
}

/// Octets `deliver` reads from its input at a time.
const DELIVER_READ: usize = server::spool::SPOOL_BUFFER;

impl Ctx {
    /// The spool under `<data_dir>`, shared with a running server.
    fn attach_spool(&self) -> Result<server::spool::Spool, Failure> {
        let spool_dir = self.data_dir.join("spool");
        server::spool::Spool::attach(&spool_dir, self.spool_threshold).map_err(|e| {
            Failure::new(
                exit::TEMP_FAIL,
                format!("cannot use the spool {}: {e}", spool_dir.display()),
            )
        })
    }

    /// The message on `input` for `deliver`, its line endings made CRLF
    /// (RFC 5322 2.3) as it is read: in memory up to `[store]
    /// spool_threshold`, past it in a file under `<data_dir>/spool` as
    /// the SMTP listener spools (issue 19), so a big message never sits
    /// in memory whole. Over `smtp.max_message_size` (counted as read) or
    /// empty is a data error; a spool that cannot take it (disk full) is
    /// temporary, so the calling MTA retries.
    fn read_message(&self, mut input: impl Read) -> Result<server::spool::Message, Failure> {
        let mut writer = std::sync::Arc::new(self.attach_spool()?).writer();
        let mut crlf = proto_smtp::CrlfNormalizer::new();
        let mut buf = vec![0; DELIVER_READ];
        let mut out = Vec::with_capacity(DELIVER_READ + DELIVER_READ / 8);
        let mut read = 0usize;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::new(
                        exit::TEMP_FAIL,
                        format!("cannot read the message: {e}"),
                    ));
                }
            };
            read = read.saturating_add(n);
            if read > self.max_message_size {
                return Err(Failure::new(
                    exit::DATA_ERR,
                    format!(
                        "message larger than smtp.max_message_size ({} octets)",
                        self.max_message_size
                    ),
                ));
            }
            out.clear();
            crlf.push(buf.get(..n).unwrap_or_default(), &mut out);
            writer.write(&out);
        }
        out.clear();
        crlf.finish(&mut out);
        writer.write(&out);
        if read == 0 {
            return Err(Failure::new(
                exit::DATA_ERR,
                "empty message on stdin: nothing delivered",
            ));
        }
        writer
            .finish()
            .map_err(|e| Failure::new(exit::TEMP_FAIL, format!("cannot spool the message: {e:?}")))
    }
}

/// Warnings on stderr: the change was made, but needs a look.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("mailroom: warning: {w}");
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A string as the inside of a JSON string (RFC 8259 7).
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A size in octets: digits, optionally followed by K, M or G (1024-based,
/// case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (t.get(..t.len() - 1).unwrap_or(""), 10),
        Some('M') => (t.get(..t.len() - 1).unwrap_or(""), 20),
        Some('G') => (t.get(..t.len() - 1).unwrap_or(""), 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad size {s:?}: digits with an optional K, M or G"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_take_1024_based_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("10k"), Ok(10 * 1024));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}

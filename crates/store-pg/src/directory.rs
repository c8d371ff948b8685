//! The directory on PostgreSQL ([`PgDirectory`], issue 21): users,
//! aliases, lists, forwards and the SCRAM fake-salt secret in the same
//! database as the store, so every node resolves, logs in and answers
//! VRFY alike, and `mailroom user add` on any machine is seen by all.
//!
//! The rules are the directory crate's ([`DirectoryCore`]: resolution,
//! login names, VRFY folding, hashing, SCRAM), which read rows through
//! its synchronous [`Lookup`]. Each call therefore runs on tokio's
//! blocking pool and drives its pooled connection from there
//! (`Handle::block_on`), never on an async worker; password hashing runs
//! there too, with no connection held.
//!
//! Writes are one transaction each, committed with `synchronous_commit =
//! on` (every connection sets it) before the future resolves. A write
//! that checks and then inserts (an address is one of user, alias or
//! list; an alias must not reach itself) first takes the transaction-level
//! advisory lock [`DIRECTORY_WRITE_LOCK`], so writers on every node are
//! serialised as SQLite's `BEGIN IMMEDIATE` serialises processes; lookups
//! take no lock.
//!
//! Schema: [`DIRECTORY_MIGRATIONS`], versioned in `directory_meta`, applied
//! at open under the advisory lock [`DIRECTORY_MIGRATION_LOCK`]. Orders
//! that SQLite gives by rowid (alias targets, list members) come from an
//! `id` column; address order is byte order (`COLLATE "C"`), as SQLite's.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use directory::{
    Directory, DirectoryConfig, DirectoryCore, DirectoryError, DirectoryFuture, Forward, Group,
    Lookup, Member, Resolution, ScramKeys, ServerNonce, User, UserQuota,
};
use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::{PgOptions, build_pool};

/// Connections in a node's directory pool: lookups are one or two short
/// indexed queries, and each call holds its connection only for those.
pub const DIRECTORY_POOL_SIZE: usize = 8;

/// The advisory lock of directory migrations ("mrdirmig" in ASCII), apart
/// from the store's, which runs in another transaction.
pub const DIRECTORY_MIGRATION_LOCK: i64 = 0x6d72_6469_726d_6967;

/// The advisory lock every checking directory write holds to its COMMIT
/// ("mrdirwri" in ASCII).
pub const DIRECTORY_WRITE_LOCK: i64 = 0x6d72_6469_7277_7269;

/// The schema version this build writes and understands.
pub const DIRECTORY_SCHEMA_VERSION: u32 = DIRECTORY_MIGRATIONS.len() as u32;

/// Directory migration steps. Append only; never edit a released step.
pub const DIRECTORY_MIGRATIONS: &[&str] = &[DIR_V1];

/// Version 0 -> 1: the directory as the embedded one has it at its
/// version 5 (users with folded columns, SCRAM keys and quotas; aliases,
/// lists, forwards). `directory_meta` holds the version and the SCRAM
/// fake-salt secret (`scram_secret`), one for every node.
const DIR_V1: &str = "
CREATE TABLE users (
    address          TEXT PRIMARY KEY,
    full_name        TEXT,
    password_hash    TEXT NOT NULL,
    local_folded     TEXT NOT NULL,
    name_folded      TEXT,
    scram_salt       BYTEA,
    scram_iterations INTEGER,
    scram_stored_key BYTEA,
    scram_server_key BYTEA,
    quota_storage    BIGINT,
    quota_messages   BIGINT
);
CREATE INDEX users_local_folded ON users (local_folded);
CREATE INDEX users_name_folded ON users (name_folded);
CREATE TABLE aliases (
    id      BIGSERIAL NOT NULL,
    address TEXT NOT NULL,
    target  TEXT NOT NULL,
    PRIMARY KEY (address, target)
);
CREATE INDEX aliases_order ON aliases (address, id);
CREATE TABLE lists (
    id      BIGSERIAL NOT NULL,
    address TEXT NOT NULL,
    member  TEXT NOT NULL,
    PRIMARY KEY (address, member)
);
CREATE INDEX lists_order ON lists (address, id);
CREATE TABLE forwards (
    address TEXT PRIMARY KEY,
    target  TEXT NOT NULL,
    keep    BOOLEAN NOT NULL,
    refuse  BOOLEAN NOT NULL
);
";

fn db(e: tokio_postgres::Error) -> DirectoryError {
    DirectoryError::Db(format!("PostgreSQL: {}", crate::tls::error_chain(&e)))
}

fn pool_db(e: deadpool_postgres::PoolError) -> DirectoryError {
    DirectoryError::Db(format!("PostgreSQL pool: {}", crate::tls::error_chain(&e)))
}

fn table(group: Group) -> (&'static str, &'static str) {
    match group {
        Group::Alias => ("aliases", "target"),
        Group::List => ("lists", "member"),
    }
}

/// SQL types of the quota columns: octets and counts as BIGINT.
fn to_sql_quota(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn from_sql_quota(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

/// A pooled connection or one of its transactions, driven from a
/// blocking thread; statements are prepared once per connection.
trait Conn: Sync {
    fn rows(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DirectoryError>;
    fn exec(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DirectoryError>;
}

impl Conn for Object {
    fn rows(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DirectoryError> {
        rt.block_on(async {
            let st = self.prepare_cached(sql).await?;
            self.query(&st, params).await
        })
        .map_err(db)
    }

    fn exec(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DirectoryError> {
        rt.block_on(async {
            let st = self.prepare_cached(sql).await?;
            self.execute(&st, params).await
        })
        .map_err(db)
    }
}

impl Conn for deadpool_postgres::Transaction<'_> {
    fn rows(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DirectoryError> {
        rt.block_on(async {
            let st = self.prepare_cached(sql).await?;
            self.query(&st, params).await
        })
        .map_err(db)
    }

    fn exec(
        &self,
        rt: &Handle,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DirectoryError> {
        rt.block_on(async {
            let st = self.prepare_cached(sql).await?;
            self.execute(&st, params).await
        })
        .map_err(db)
    }
}

/// [`Lookup`] on one connection (or transaction).
struct Rows<'a> {
    conn: &'a dyn Conn,
    rt: &'a Handle,
}

impl Rows<'_> {
    fn rows(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, DirectoryError> {
        self.conn.rows(self.rt, sql, p)
    }

    fn exec(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64, DirectoryError> {
        self.conn.exec(self.rt, sql, p)
    }

    fn first(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, DirectoryError> {
        Ok(self.rows(sql, p)?.into_iter().next())
    }

    fn password_hash(&self, address: &str) -> Result<Option<String>, DirectoryError> {
        match self.first(
            "SELECT password_hash FROM users WHERE address = $1",
            &[&address],
        )? {
            Some(r) => Ok(Some(r.try_get(0).map_err(db)?)),
            None => Ok(None),
        }
    }

    fn stored_keys(&self, address: &str) -> Result<Option<ScramKeys>, DirectoryError> {
        let Some(row) = self.first(
            "SELECT scram_salt, scram_iterations, scram_stored_key, scram_server_key
             FROM users WHERE address = $1",
            &[&address],
        )?
        else {
            return Ok(None);
        };
        let salt: Option<Vec<u8>> = row.try_get(0).map_err(db)?;
        let iterations: Option<i32> = row.try_get(1).map_err(db)?;
        let stored: Option<Vec<u8>> = row.try_get(2).map_err(db)?;
        let server: Option<Vec<u8>> = row.try_get(3).map_err(db)?;
        let (Some(salt), Some(iterations), Some(stored), Some(server)) =
            (salt, iterations, stored, server)
        else {
            return Ok(None);
        };
        let unreadable = || DirectoryError::Password(format!("unreadable SCRAM keys of {address}"));
        let iterations = u32::try_from(iterations)
            .ok()
            .and_then(std::num::NonZeroU32::new)
            .ok_or_else(unreadable)?;
        Ok(Some(ScramKeys {
            salt,
            iterations,
            stored_key: stored.as_slice().try_into().map_err(|_| unreadable())?,
            server_key: server.as_slice().try_into().map_err(|_| unreadable())?,
        }))
    }

    /// Writes (or with None clears) a user's keys; rows changed.
    fn write_keys(
        &self,
        address: &str,
        keys: Option<&ScramKeys>,
        only_missing: bool,
    ) -> Result<u64, DirectoryError> {
        let sql = if only_missing {
            "UPDATE users SET scram_salt = $2, scram_iterations = $3, scram_stored_key = $4,
                    scram_server_key = $5
             WHERE address = $1 AND scram_stored_key IS NULL"
        } else {
            "UPDATE users SET scram_salt = $2, scram_iterations = $3, scram_stored_key = $4,
                    scram_server_key = $5
             WHERE address = $1"
        };
        let salt = keys.map(|k| k.salt.as_slice());
        let iterations = keys.map(|k| i32::try_from(k.iterations.get()).unwrap_or(i32::MAX));
        let stored = keys.map(|k| k.stored_key.as_slice());
        let server = keys.map(|k| k.server_key.as_slice());
        self.exec(sql, &[&address, &salt, &iterations, &stored, &server])
    }
}

impl Lookup for Rows<'_> {
    fn user_exists(&self, address: &str) -> Result<bool, DirectoryError> {
        Ok(self
            .first("SELECT 1 FROM users WHERE address = $1", &[&address])?
            .is_some())
    }

    fn group_targets(&self, group: Group, address: &str) -> Result<Vec<String>, DirectoryError> {
        let (table, column) = table(group);
        let sql = format!("SELECT {column} FROM {table} WHERE address = $1 ORDER BY id");
        self.rows(&sql, &[&address])?
            .iter()
            .map(|r| r.try_get(0).map_err(db))
            .collect()
    }

    fn forward(&self, address: &str) -> Result<Option<Forward>, DirectoryError> {
        match self.first(
            "SELECT target, keep, refuse FROM forwards WHERE address = $1",
            &[&address],
        )? {
            Some(r) => Ok(Some(Forward {
                target: r.try_get(0).map_err(db)?,
                keep: r.try_get(1).map_err(db)?,
                refuse: r.try_get(2).map_err(db)?,
            })),
            None => Ok(None),
        }
    }

    fn full_name(&self, address: &str) -> Result<Option<Option<String>>, DirectoryError> {
        match self.first(
            "SELECT full_name FROM users WHERE address = $1",
            &[&address],
        )? {
            Some(r) => Ok(Some(r.try_get(0).map_err(db)?)),
            None => Ok(None),
        }
    }
}

/// What every call's blocking closure gets.
struct Env {
    core: Arc<DirectoryCore>,
    pool: Pool,
    rt: Handle,
}

impl Env {
    fn client(&self) -> Result<Object, DirectoryError> {
        self.rt.block_on(self.pool.get()).map_err(pool_db)
    }

    fn rows<'a>(&'a self, conn: &'a dyn Conn) -> Rows<'a> {
        Rows { conn, rt: &self.rt }
    }

    /// Runs `f` in one transaction under [`DIRECTORY_WRITE_LOCK`] and
    /// commits it when `f` succeeds (dropping it rolls back).
    fn write<T>(
        &self,
        f: impl FnOnce(&Rows<'_>) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let mut client = self.client()?;
        let tx = self.rt.block_on(client.transaction()).map_err(db)?;
        let value = {
            let rows = self.rows(&tx);
            rows.exec("SELECT pg_advisory_xact_lock($1)", &[&DIRECTORY_WRITE_LOCK])?;
            f(&rows)?
        };
        self.rt.block_on(tx.commit()).map_err(db)?;
        Ok(value)
    }
}

/// The directory on one PostgreSQL database; one handle per node (module
/// doc).
pub struct PgDirectory {
    env: Arc<Env>,
}

impl std::fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDirectory")
            .field("core", &self.env.core)
            .finish_non_exhaustive()
    }
}

impl Drop for PgDirectory {
    fn drop(&mut self) {
        self.env.pool.close();
    }
}

impl PgDirectory {
    /// Connects, migrates the directory's schema (under an advisory lock;
    /// a newer one is refused with [`DirectoryError::NewerSchema`]) and
    /// reads the SCRAM secret, making it when it is the first node. Uses
    /// `opts.url` and `opts.statement_timeout`, with a pool of its own of
    /// [`DIRECTORY_POOL_SIZE`]. Must run inside a tokio runtime.
    pub async fn open(
        opts: &PgOptions,
        config: DirectoryConfig,
    ) -> Result<Arc<PgDirectory>, DirectoryError> {
        let pg_config = opts
            .pg_config()
            .map_err(|e| DirectoryError::Db(e.to_string()))?;
        let pool = build_pool(&pg_config, DIRECTORY_POOL_SIZE.min(opts.pool_size.max(1)))
            .map_err(|e| DirectoryError::Db(e.to_string()))?;
        let mut client = pool.get().await.map_err(pool_db)?;
        let secret = migrate(&mut client).await?;
        drop(client);
        let core = DirectoryCore::new(config, || Ok(secret))?;
        Ok(Arc::new(PgDirectory {
            env: Arc::new(Env {
                core: Arc::new(core),
                pool,
                rt: Handle::current(),
            }),
        }))
    }

    /// Runs `f` on tokio's blocking pool (module doc).
    fn blocking<T, F>(&self, f: F) -> DirectoryFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Env) -> Result<T, DirectoryError> + Send + 'static,
    {
        let env = Arc::clone(&self.env);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&env))
                .await
                .map_err(|e| DirectoryError::Db(format!("directory task failed: {e}")))?
        })
    }

    /// Runs `f` on one pooled connection's rows, on the blocking pool.
    fn lookup<T, F>(&self, f: F) -> DirectoryFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectoryCore, &Rows<'_>) -> Result<T, DirectoryError> + Send + 'static,
    {
        self.blocking(move |env| {
            let client = env.client()?;
            f(&env.core, &env.rows(&client))
        })
    }

    fn add_group(
        &self,
        group: Group,
        address: &str,
        targets: &[String],
    ) -> DirectoryFuture<'_, Vec<String>> {
        let (address, targets) = (address.to_string(), targets.to_vec());
        self.blocking(move |env| {
            let core = &env.core;
            let address = core.canonical_local(&address)?;
            let (table, column) = table(group);
            if targets.is_empty() {
                return Err(DirectoryError::InvalidAddress(format!(
                    "{address} (no {column}s given)"
                )));
            }
            let targets = targets
                .iter()
                .map(|t| core.canonical(t))
                .collect::<Result<Vec<_>, _>>()?;
            env.write(|rows| {
                if rows.user_exists(&address)?
                    || !rows.group_targets(group.other(), &address)?.is_empty()
                {
                    return Err(DirectoryError::AlreadyExists(address.clone()));
                }
                let sql = format!(
                    "INSERT INTO {table} (address, {column}) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                );
                for t in &targets {
                    rows.exec(&sql, &[&address, t])?;
                }
                // Checked with the new rows in place; an error rolls them
                // back.
                if let Some(path) = core.cycle_through(rows, &address)? {
                    return Err(DirectoryError::InvalidAddress(format!(
                        "{address} (it would deliver to itself: {})",
                        path.join(" -> ")
                    )));
                }
                let mut warnings = Vec::new();
                for t in &targets {
                    if core.is_dangling(rows, t)? {
                        tracing::warn!(%address, target = %t, "group target does not exist");
                        warnings.push(format!(
                            "{t} does not exist (yet): mail to {address} skips it until it does"
                        ));
                    }
                }
                tracing::info!(%address, ?group, added = targets.len(), "directory group updated");
                Ok(warnings)
            })
        })
    }

    fn del_group(
        &self,
        group: Group,
        address: &str,
        targets: &[String],
    ) -> DirectoryFuture<'_, ()> {
        let (address, targets) = (address.to_string(), targets.to_vec());
        self.blocking(move |env| {
            let core = &env.core;
            let address = core.canonical(&address)?;
            let targets = targets
                .iter()
                .map(|t| core.canonical(t))
                .collect::<Result<Vec<_>, _>>()?;
            let (table, column) = table(group);
            env.write(|rows| {
                if rows.group_targets(group, &address)?.is_empty() {
                    return Err(DirectoryError::NotFound(address.clone()));
                }
                if targets.is_empty() {
                    rows.exec(
                        &format!("DELETE FROM {table} WHERE address = $1"),
                        &[&address],
                    )?;
                } else {
                    let sql = format!("DELETE FROM {table} WHERE address = $1 AND {column} = $2");
                    for t in &targets {
                        if rows.exec(&sql, &[&address, t])? == 0 {
                            return Err(DirectoryError::NotFound(format!("{t} in {address}")));
                        }
                    }
                }
                tracing::info!(%address, ?group, "directory group reduced");
                Ok(())
            })
        })
    }

    fn all_groups(&self, group: Group) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>> {
        self.lookup(move |_, rows| {
            let (table, column) = table(group);
            let sql =
                format!("SELECT address, {column} FROM {table} ORDER BY address COLLATE \"C\", id");
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for row in rows.rows(&sql, &[])? {
                let address: String = row.try_get(0).map_err(db)?;
                let target: String = row.try_get(1).map_err(db)?;
                match out.last_mut() {
                    Some((a, ts)) if *a == address => ts.push(target),
                    _ => out.push((address, vec![target])),
                }
            }
            Ok(out)
        })
    }
}

/// Brings the directory schema to [`DIRECTORY_SCHEMA_VERSION`] in one
/// transaction under [`DIRECTORY_MIGRATION_LOCK`], and returns the SCRAM
/// secret (made here by the first node).
pub(crate) async fn migrate(client: &mut Object) -> Result<String, DirectoryError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&DIRECTORY_MIGRATION_LOCK],
    )
    .await
    .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS directory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .await
    .map_err(db)?;
    let row = tx
        .query_opt(
            "SELECT value FROM directory_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(db)?;
    let found: u32 = match row {
        None => 0,
        Some(r) => {
            let v: String = r.try_get(0).map_err(db)?;
            v.trim().parse().map_err(|_| {
                DirectoryError::Db(format!("bad schema_version in directory_meta: {v:?}"))
            })?
        }
    };
    if found > DIRECTORY_SCHEMA_VERSION {
        return Err(DirectoryError::NewerSchema {
            found,
            supported: DIRECTORY_SCHEMA_VERSION,
        });
    }
    for (version, step) in DIRECTORY_MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(
            from = version,
            to = version + 1,
            "migrating PostgreSQL directory schema"
        );
        tx.batch_execute(step).await.map_err(db)?;
    }
    if found < DIRECTORY_SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO directory_meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&DIRECTORY_SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(db)?;
    }
    tx.execute(
        "INSERT INTO directory_meta (key, value) VALUES ('scram_secret', $1) \
         ON CONFLICT (key) DO NOTHING",
        &[&directory::new_scram_secret()?],
    )
    .await
    .map_err(db)?;
    let secret: String = tx
        .query_one(
            "SELECT value FROM directory_meta WHERE key = 'scram_secret'",
            &[],
        )
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(secret)
}

impl Directory for PgDirectory {
    fn domains(&self) -> &[String] {
        self.env.core.domains()
    }

    fn max_concurrent_hashes(&self) -> usize {
        self.env.core.max_concurrent_hashes()
    }

    fn scram_enabled(&self) -> bool {
        self.env.core.scram_enabled()
    }

    fn fake_scram_keys(&self, login: &str) -> ScramKeys {
        self.env.core.fake_scram_keys(login)
    }

    fn scram_server_nonce(&self) -> Result<ServerNonce, DirectoryError> {
        self.env.core.scram_server_nonce()
    }

    fn resolve<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Resolution> {
        let address = address.to_string();
        self.lookup(move |core, rows| core.resolve_in(rows, &address))
    }

    fn vrfy<'a>(&'a self, query: &'a str) -> DirectoryFuture<'a, Vec<User>> {
        let terms = self.env.core.vrfy_terms(query);
        self.lookup(move |_, rows| {
            let Some(t) = terms else {
                return Ok(Vec::new());
            };
            rows.rows(
                "SELECT address, full_name FROM users
                 WHERE address = $1 OR local_folded = $2 OR name_folded = $3
                 ORDER BY address COLLATE \"C\"",
                &[&t.exact, &t.local, &t.name],
            )?
            .iter()
            .map(|r| {
                Ok(User {
                    address: r.try_get(0).map_err(db)?,
                    full_name: r.try_get(1).map_err(db)?,
                })
            })
            .collect()
        })
    }

    fn expn<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Vec<Member>>> {
        let address = address.to_string();
        self.lookup(move |core, rows| core.expn_in(rows, &address))
    }

    fn find_login<'a>(&'a self, login: &'a str) -> DirectoryFuture<'a, Option<String>> {
        let login = login.to_string();
        self.lookup(move |core, rows| core.find_login_in(rows, &login))
    }

    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, Option<String>> {
        let (login, password) = (login.to_string(), password.to_string());
        self.blocking(move |env| {
            let found = {
                let client = env.client()?;
                let rows = env.rows(&client);
                match env.core.find_login_in(&rows, &login)? {
                    Some(account) => rows.password_hash(&account)?.map(|h| (account, h)),
                    None => None,
                }
            };
            // The argon2 check with no connection held.
            env.core.check_password(found, &password)
        })
    }

    fn scram_keys<'a>(
        &'a self,
        login: &'a str,
    ) -> DirectoryFuture<'a, Option<(String, ScramKeys)>> {
        let login = login.to_string();
        self.lookup(move |core, rows| {
            if !core.scram_enabled() {
                return Ok(None);
            }
            let Some(account) = core.find_login_in(rows, &login)? else {
                return Ok(None);
            };
            Ok(rows.stored_keys(&account)?.map(|k| (account, k)))
        })
    }

    fn fill_scram_keys<'a>(
        &'a self,
        account: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, bool> {
        let (account, password) = (account.to_string(), password.to_string());
        self.blocking(move |env| {
            if !env.core.scram_enabled() {
                return Ok(false);
            }
            let account = env.core.canonical(&account)?;
            {
                let client = env.client()?;
                if env.rows(&client).stored_keys(&account)?.is_some() {
                    return Ok(false);
                }
            }
            let Some(keys) = env.core.new_scram_keys(&password)? else {
                return Ok(false);
            };
            // Only where still missing: a `user passwd` in between has
            // written keys for the new password, which must win.
            let client = env.client()?;
            let written = env.rows(&client).write_keys(&account, Some(&keys), true)? == 1;
            if written {
                tracing::info!(%account, "SCRAM keys written at login");
            }
            Ok(written)
        })
    }

    fn add_user<'a>(
        &'a self,
        address: &'a str,
        full_name: Option<&'a str>,
        password: &'a str,
    ) -> DirectoryFuture<'a, String> {
        let address = address.to_string();
        let full_name = full_name.map(str::to_string);
        let password = password.to_string();
        self.blocking(move |env| {
            let core = &env.core;
            let address = core.canonical_local(&address)?;
            let full_name = directory::check_full_name(full_name.as_deref())?;
            let hash = core.hash_password(&password)?;
            let scram = core.new_scram_keys(&password)?;
            let (local_folded, name_folded) = core.folded(&address, full_name);
            env.write(|rows| {
                if rows.user_exists(&address)?
                    || !rows.group_targets(Group::Alias, &address)?.is_empty()
                    || !rows.group_targets(Group::List, &address)?.is_empty()
                {
                    return Err(DirectoryError::AlreadyExists(address.clone()));
                }
                rows.exec(
                    "INSERT INTO users (address, full_name, password_hash, local_folded, name_folded)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&address, &full_name, &hash, &local_folded, &name_folded],
                )?;
                rows.write_keys(&address, scram.as_ref(), false)?;
                Ok(())
            })?;
            tracing::info!(%address, "user added");
            Ok(address)
        })
    }

    fn delete_user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.blocking(move |env| {
            let address = env.core.canonical(&address)?;
            env.write(|rows| {
                if rows.exec("DELETE FROM users WHERE address = $1", &[&address])? == 0 {
                    return Err(DirectoryError::NotFound(address.clone()));
                }
                rows.exec("DELETE FROM forwards WHERE address = $1", &[&address])?;
                Ok(())
            })?;
            tracing::info!(%address, "user deleted");
            Ok(())
        })
    }

    fn set_password<'a>(&'a self, address: &'a str, password: &'a str) -> DirectoryFuture<'a, ()> {
        let (address, password) = (address.to_string(), password.to_string());
        self.blocking(move |env| {
            let core = &env.core;
            let address = core.canonical(&address)?;
            let hash = core.hash_password(&password)?;
            let scram = core.new_scram_keys(&password)?;
            env.write(|rows| {
                let n = rows.exec(
                    "UPDATE users SET password_hash = $2 WHERE address = $1",
                    &[&address, &hash],
                )?;
                if n == 0 {
                    return Err(DirectoryError::NotFound(address.clone()));
                }
                // Cleared when SCRAM is off, so keys of the old password
                // cannot outlive it.
                rows.write_keys(&address, scram.as_ref(), false)?;
                Ok(())
            })
        })
    }

    fn list_users(&self) -> DirectoryFuture<'_, Vec<User>> {
        self.lookup(|_, rows| {
            rows.rows(
                "SELECT address, full_name FROM users ORDER BY address COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(User {
                    address: r.try_get(0).map_err(db)?,
                    full_name: r.try_get(1).map_err(db)?,
                })
            })
            .collect()
        })
    }

    fn set_quota<'a>(&'a self, address: &'a str, quota: UserQuota) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.lookup(move |core, rows| {
            let address = core.canonical(&address)?;
            let n = rows.exec(
                "UPDATE users SET quota_storage = $2, quota_messages = $3 WHERE address = $1",
                &[
                    &address,
                    &to_sql_quota(quota.storage),
                    &to_sql_quota(quota.messages),
                ],
            )?;
            if n == 0 {
                return Err(DirectoryError::NotFound(address));
            }
            Ok(())
        })
    }

    fn quota<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<UserQuota>> {
        let address = address.to_string();
        self.lookup(move |core, rows| {
            let address = core.canonical(&address)?;
            match rows.first(
                "SELECT quota_storage, quota_messages FROM users WHERE address = $1",
                &[&address],
            )? {
                Some(r) => Ok(Some(UserQuota {
                    storage: from_sql_quota(r.try_get(0).map_err(db)?),
                    messages: from_sql_quota(r.try_get(1).map_err(db)?),
                })),
                None => Ok(None),
            }
        })
    }

    fn quotas(&self) -> DirectoryFuture<'_, Vec<(String, UserQuota)>> {
        self.lookup(|_, rows| {
            rows.rows(
                "SELECT address, quota_storage, quota_messages FROM users
                 WHERE quota_storage IS NOT NULL OR quota_messages IS NOT NULL
                 ORDER BY address COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(db)?,
                    UserQuota {
                        storage: from_sql_quota(r.try_get(1).map_err(db)?),
                        messages: from_sql_quota(r.try_get(2).map_err(db)?),
                    },
                ))
            })
            .collect()
        })
    }

    fn user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<User>> {
        let address = address.to_string();
        self.lookup(move |core, rows| {
            let address = core.canonical(&address)?;
            match rows.full_name(&address)? {
                Some(full_name) => Ok(Some(User { address, full_name })),
                None => Ok(None),
            }
        })
    }

    fn add_alias<'a>(
        &'a self,
        address: &'a str,
        targets: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>> {
        self.add_group(Group::Alias, address, targets)
    }

    fn del_alias<'a>(&'a self, address: &'a str, targets: &'a [String]) -> DirectoryFuture<'a, ()> {
        self.del_group(Group::Alias, address, targets)
    }

    fn aliases(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>> {
        self.all_groups(Group::Alias)
    }

    fn add_list<'a>(
        &'a self,
        address: &'a str,
        members: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>> {
        self.add_group(Group::List, address, members)
    }

    fn del_list<'a>(&'a self, address: &'a str, members: &'a [String]) -> DirectoryFuture<'a, ()> {
        self.del_group(Group::List, address, members)
    }

    fn lists(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>> {
        self.all_groups(Group::List)
    }

    fn set_forward<'a>(
        &'a self,
        address: &'a str,
        target: &'a str,
        keep: bool,
        refuse: bool,
    ) -> DirectoryFuture<'a, ()> {
        let (address, target) = (address.to_string(), target.to_string());
        self.blocking(move |env| {
            let address = env.core.canonical(&address)?;
            let target = env.core.canonical(&target)?;
            if target == address {
                return Err(DirectoryError::InvalidAddress(format!(
                    "{target} (a user cannot forward to itself)"
                )));
            }
            env.write(|rows| {
                if !rows.user_exists(&address)? {
                    return Err(DirectoryError::NotFound(address.clone()));
                }
                rows.exec(
                    "INSERT INTO forwards (address, target, keep, refuse) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (address) DO UPDATE
                     SET target = EXCLUDED.target, keep = EXCLUDED.keep, refuse = EXCLUDED.refuse",
                    &[&address, &target, &keep, &refuse],
                )?;
                Ok(())
            })?;
            tracing::info!(%address, %target, keep, refuse, "forward set");
            Ok(())
        })
    }

    fn del_forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.lookup(move |core, rows| {
            let address = core.canonical(&address)?;
            if rows.exec("DELETE FROM forwards WHERE address = $1", &[&address])? == 0 {
                return Err(DirectoryError::NotFound(format!("forward for {address}")));
            }
            Ok(())
        })
    }

    fn forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Forward>> {
        let address = address.to_string();
        self.lookup(move |core, rows| {
            let address = core.canonical(&address)?;
            rows.forward(&address)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The directory's conformance suite on PostgreSQL: each test on a
    //! fresh database of the process's private cluster; every `open` is
    //! another node's handle.

    use super::*;

    pub(crate) struct Pg {
        url: String,
    }

    impl directory::conformance::Backend for Pg {
        fn open(&self, config: DirectoryConfig) -> Result<Arc<dyn Directory>, DirectoryError> {
            let opts = PgOptions::new(self.url.clone());
            let dir = tokio::task::block_in_place(|| {
                Handle::current().block_on(PgDirectory::open(&opts, config))
            })?;
            Ok(dir)
        }
    }

    pub(crate) fn pg() -> Pg {
        Pg {
            url: crate::cluster::shared().create_database(),
        }
    }

    directory::directory_conformance!(crate::directory::tests::pg(), unless crate::cluster::skip());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_share_one_scram_secret_and_a_newer_schema_is_refused() {
        if crate::cluster::skip() {
            return;
        }
        let pg = pg();
        let config = directory::conformance::config(&["example.org"]);
        let a = directory::conformance::Backend::open(&pg, config.clone()).unwrap();
        let b = directory::conformance::Backend::open(&pg, config.clone()).unwrap();
        // Fake SCRAM salts of an unknown name agree across nodes, so
        // asking two nodes does not tell a fake from a real user.
        assert_eq!(
            a.fake_scram_keys("nobody@example.org"),
            b.fake_scram_keys("nobody@example.org")
        );
        drop((a, b));
        let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute(
                "UPDATE directory_meta SET value = $1 WHERE key = 'schema_version'",
                &[&(DIRECTORY_SCHEMA_VERSION + 1).to_string()],
            )
            .await
            .unwrap();
        let Err(err) = directory::conformance::Backend::open(&pg, config) else {
            panic!("a newer directory schema was opened");
        };
        assert!(
            matches!(err, DirectoryError::NewerSchema { found, .. } if found == DIRECTORY_SCHEMA_VERSION + 1),
            "{err}"
        );
    }
}

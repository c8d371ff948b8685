//! [`SharedState`]: named values every node of one database must agree
//! on (issue 21: "shared state lives in the database so nodes agree"),
//! such as the SRS secret and the DKIM keys, in the `shared_state` table.
//! A value is written once: the first node (or CLI) to store a name wins
//! and every later one reads it, so two nodes starting at once still end
//! with one secret.

use deadpool_postgres::Pool;
use store::StoreError;

use crate::{PgOptions, build_pool, map_err, pool_err, schema};

/// Connections of a [`SharedState`]: it is read at start and refreshed
/// now and then, never on a session's path.
const SHARED_POOL_SIZE: usize = 1;

/// The `shared_state` table of one database (a clone shares the pool).
#[derive(Clone)]
pub struct SharedState {
    pool: Pool,
}

impl SharedState {
    /// Connects (and migrates the schema, as [`crate::PgStore::open`]
    /// does, so the CLI can use it before any server ran).
    pub async fn open(opts: &PgOptions) -> Result<SharedState, StoreError> {
        let pool = build_pool(&opts.pg_config()?, SHARED_POOL_SIZE)?;
        let mut client = pool.get().await.map_err(pool_err)?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(SharedState { pool })
    }

    /// The value stored under `name`.
    pub async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt("SELECT value FROM shared_state WHERE name = $1", &[&name])
            .await
            .map_err(map_err)?;
        row.map(|r| r.try_get(0).map_err(map_err)).transpose()
    }

    /// Stores `value` under `name` unless a value is there; returns the
    /// stored value (the one given, or the earlier one).
    pub async fn get_or_put(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO shared_state (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )
            .await
            .map_err(map_err)?;
        client
            .query_one("SELECT value FROM shared_state WHERE name = $1", &[&name])
            .await
            .map_err(map_err)?
            .try_get(0)
            .map_err(map_err)
    }

    /// Stores `value` under `name` when there is none: false when one was
    /// there (nothing changed).
    pub async fn put_new(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute(
                "INSERT INTO shared_state (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }

    /// Every name starting with `prefix` and its value, by name.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT name, value FROM shared_state WHERE starts_with(name, $1) \
                 ORDER BY name COLLATE \"C\"",
                &[&prefix],
            )
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(map_err)?,
                    r.try_get(1).map_err(map_err)?,
                ))
            })
            .collect()
    }
}

impl SharedState {
    /// Counts one failed login under `key`, restarting the count when
    /// the last failure is older than `window`; returns the failures
    /// within the window, from every node.
    pub async fn add_login_failure(
        &self,
        key: &str,
        window: std::time::Duration,
    ) -> Result<u32, StoreError> {
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let client = self.pool.get().await.map_err(pool_err)?;
        let n: i32 = client
            .query_one(
                "INSERT INTO login_failures (key, failures, last)
                 VALUES ($1, 1, extract(epoch FROM clock_timestamp())::bigint)
                 ON CONFLICT (key) DO UPDATE SET
                     failures = CASE
                         WHEN login_failures.last
                              < extract(epoch FROM clock_timestamp())::bigint - $2 THEN 1
                         ELSE login_failures.failures + 1 END,
                     last = EXCLUDED.last
                 RETURNING failures",
                &[&key, &window],
            )
            .await
            .map_err(map_err)?
            .try_get(0)
            .map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    /// Forgets the failures of `keys` (a login succeeded).
    pub async fn clear_login_failures(&self, keys: &[String]) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute("DELETE FROM login_failures WHERE key = ANY($1)", &[&keys])
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Keys with at least `failures` failures whose last one is less than
    /// `within` ago, with how long ago that was.
    pub async fn login_failures_over(
        &self,
        failures: u32,
        within: std::time::Duration,
    ) -> Result<Vec<(String, std::time::Duration)>, StoreError> {
        let failures = i32::try_from(failures).unwrap_or(i32::MAX);
        let within = i64::try_from(within.as_secs()).unwrap_or(i64::MAX);
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT key, extract(epoch FROM clock_timestamp())::bigint - last FROM login_failures
                 WHERE failures >= $1
                   AND last > extract(epoch FROM clock_timestamp())::bigint - $2",
                &[&failures, &within],
            )
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let ago: i64 = r.try_get(1).map_err(map_err)?;
                Ok((
                    r.try_get(0).map_err(map_err)?,
                    std::time::Duration::from_secs(u64::try_from(ago).unwrap_or(0)),
                ))
            })
            .collect()
    }
}

/// A terminal message stored for a session on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalRow {
    pub account: String,
    pub sender: String,
    pub text: String,
}

impl SharedState {
    /// Announces that `node_id` has sessions of exactly `accounts`, until
    /// `lease` from now on the database's clock (older rows of this node
    /// go), and returns the accounts other nodes announce with a lease
    /// not yet ended, with their node.
    pub async fn renew_presence(
        &self,
        node_id: &str,
        accounts: &[String],
        lease: std::time::Duration,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(map_err)?;
        tx.execute(
            "DELETE FROM presence WHERE node_id = $1 AND NOT (account = ANY($2))",
            &[&node_id, &accounts],
        )
        .await
        .map_err(map_err)?;
        tx.execute(
            "INSERT INTO presence (account, node_id, expires)
             SELECT a, $1, extract(epoch FROM clock_timestamp())::bigint + $3
             FROM unnest($2::text[]) AS a
             ON CONFLICT (account, node_id) DO UPDATE SET expires = EXCLUDED.expires",
            &[&node_id, &accounts, &lease],
        )
        .await
        .map_err(map_err)?;
        let rows = tx
            .query(
                "SELECT account, node_id FROM presence
                 WHERE node_id <> $1 AND expires > extract(epoch FROM clock_timestamp())::bigint",
                &[&node_id],
            )
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(map_err)?,
                    r.try_get(1).map_err(map_err)?,
                ))
            })
            .collect()
    }

    /// Takes `account`'s ALERT slot for every node of the database: true
    /// when its last ALERT (on any node) is at least `interval` ago on
    /// the database's clock, which it then sets to now. One conditional
    /// upsert: of two nodes claiming at once, the row lock lets one win.
    pub async fn claim_alert(
        &self,
        account: &str,
        interval: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let millis = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "INSERT INTO alert_claims (account, last_alert) VALUES ($1, clock_timestamp())
                 ON CONFLICT (account) DO UPDATE SET last_alert = EXCLUDED.last_alert
                 WHERE alert_claims.last_alert
                       <= clock_timestamp() - $2::bigint * interval '1 millisecond'
                 RETURNING 1",
                &[&account, &millis],
            )
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    /// Stores a terminal message for `account`'s session on `node_id`
    /// (committed when this returns).
    pub async fn send_terminal(&self, node_id: &str, msg: &TerminalRow) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO terminal_messages (node_id, account, sender, text)
                 VALUES ($1, $2, $3, $4)",
                &[&node_id, &msg.account, &msg.sender, &msg.text],
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Takes (deletes and returns, oldest first) the terminal messages
    /// for `node_id`'s sessions.
    pub async fn take_terminal(&self, node_id: &str) -> Result<Vec<TerminalRow>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "DELETE FROM terminal_messages WHERE node_id = $1
                 RETURNING id, account, sender, text",
                &[&node_id],
            )
            .await
            .map_err(map_err)?;
        let mut out: Vec<(i64, TerminalRow)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(map_err)?,
                    TerminalRow {
                        account: r.try_get(1).map_err(map_err)?,
                        sender: r.try_get(2).map_err(map_err)?,
                        text: r.try_get(3).map_err(map_err)?,
                    },
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, m)| m).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_value_of_a_name_wins_on_every_node() {
        if crate::cluster::skip() {
            return;
        }
        let url = crate::cluster::shared().create_database();
        let opts = PgOptions::new(url);
        let (a, b) = (
            SharedState::open(&opts).await.expect("a"),
            SharedState::open(&opts).await.expect("b"),
        );
        assert_eq!(a.get("srs_secret").await.expect("get"), None);
        assert_eq!(a.get_or_put("srs_secret", "one").await.expect("put"), "one");
        assert_eq!(b.get_or_put("srs_secret", "two").await.expect("put"), "one");
        assert!(b.put_new("dkim/x+s.key", "k1").await.expect("new"));
        assert!(!a.put_new("dkim/x+s.key", "k2").await.expect("again"));
        assert!(a.put_new("dkim/a+s.key", "k0").await.expect("new"));
        let lease = std::time::Duration::from_secs(30);
        let accounts = vec!["alice@x".to_string()];
        assert!(
            a.renew_presence("a", &accounts, lease)
                .await
                .unwrap()
                .is_empty()
        );
        let seen = b.renew_presence("b", &[], lease).await.unwrap();
        assert_eq!(seen, vec![("alice@x".to_string(), "a".to_string())]);
        // A lease that has ended does not count.
        a.renew_presence("a", &accounts, std::time::Duration::ZERO)
            .await
            .unwrap();
        assert!(b.renew_presence("b", &[], lease).await.unwrap().is_empty());
        let m = TerminalRow {
            account: "alice@x".into(),
            sender: "bob@x".into(),
            text: "hi".into(),
        };
        b.send_terminal("a", &m).await.unwrap();
        assert!(b.take_terminal("b").await.unwrap().is_empty());
        assert_eq!(a.take_terminal("a").await.unwrap(), vec![m]);
        assert!(a.take_terminal("a").await.unwrap().is_empty());
        let window = std::time::Duration::from_secs(60);
        assert_eq!(
            a.add_login_failure("ip:192.0.2.1", window).await.unwrap(),
            1
        );
        assert_eq!(
            b.add_login_failure("ip:192.0.2.1", window).await.unwrap(),
            2
        );
        let over = a.login_failures_over(2, window).await.unwrap();
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].0, "ip:192.0.2.1");
        b.clear_login_failures(&["ip:192.0.2.1".to_string()])
            .await
            .unwrap();
        assert!(a.login_failures_over(1, window).await.unwrap().is_empty());
        assert_eq!(
            a.list("dkim/").await.expect("list"),
            vec![
                ("dkim/a+s.key".to_string(), "k0".to_string()),
                ("dkim/x+s.key".to_string(), "k1".to_string())
            ]
        );
    }
}

#[cfg(test)]
mod alert_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_alert_slot_per_interval_across_handles() {
        if crate::cluster::skip() {
            return;
        }
        let url = crate::cluster::shared().create_database();
        let opts = PgOptions::new(url);
        let (a, b) = (
            SharedState::open(&opts).await.expect("a"),
            SharedState::open(&opts).await.expect("b"),
        );
        let hour = std::time::Duration::from_secs(3600);
        assert!(a.claim_alert("alice@x", hour).await.expect("claim"));
        // Taken, on the other node too; another account has its own slot.
        assert!(!b.claim_alert("alice@x", hour).await.expect("claim"));
        assert!(!a.claim_alert("alice@x", hour).await.expect("claim"));
        assert!(b.claim_alert("bob@x", hour).await.expect("claim"));
        // Once the interval has passed (here: none), the slot is free.
        assert!(
            b.claim_alert("alice@x", std::time::Duration::ZERO)
                .await
                .expect("claim")
        );
    }
}

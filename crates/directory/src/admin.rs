//! Managing the directory (SPEC 4, 7): users, aliases, lists and forwards,
//! as the `mailroom user|alias|list|forward` subcommands use them.
//!
//! An address is at most one of user, alias or list; the check and the
//! insert run in one `BEGIN IMMEDIATE` transaction so a second process
//! cannot slip in between. Adding to an existing alias or list adds targets
//! (duplicates ignored).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::address::MAX_FULL_NAME_LEN;
use crate::{DirectoryDb, DirectoryError, Forward, Lookup, User, UserQuota};

/// The two kinds of multi-target entries; they share their code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Alias,
    List,
}

impl Group {
    fn table(self) -> &'static str {
        match self {
            Group::Alias => "aliases",
            Group::List => "lists",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Group::Alias => "target",
            Group::List => "member",
        }
    }

    /// The other kind: an address is at most one of them.
    pub fn other(self) -> Group {
        match self {
            Group::Alias => Group::List,
            Group::List => Group::Alias,
        }
    }
}

pub(crate) fn user_exists(conn: &Connection, address: &str) -> Result<bool, DirectoryError> {
    // Cached statements: these run on every RCPT and login.
    Ok(conn
        .prepare_cached("SELECT 1 FROM users WHERE address = ?1")?
        .query_row([address], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn group_exists(
    conn: &Connection,
    group: Group,
    address: &str,
) -> Result<bool, DirectoryError> {
    let sql = format!("SELECT 1 FROM {} WHERE address = ?1 LIMIT 1", group.table());
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([address], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The targets of an alias or members of a list, in insertion order; empty
/// when there is no such entry.
pub(crate) fn group_targets(
    conn: &Connection,
    group: Group,
    address: &str,
) -> Result<Vec<String>, DirectoryError> {
    let sql = format!(
        "SELECT {} FROM {} WHERE address = ?1 ORDER BY rowid",
        group.column(),
        group.table()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([address], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn load_forward(
    conn: &Connection,
    address: &str,
) -> Result<Option<Forward>, DirectoryError> {
    Ok(conn
        .prepare_cached("SELECT target, keep, refuse FROM forwards WHERE address = ?1")?
        .query_row([address], |r| {
            Ok(Forward {
                target: r.get(0)?,
                keep: r.get(1)?,
                refuse: r.get(2)?,
            })
        })
        .optional()?)
}

pub(crate) fn password_hash(
    conn: &Connection,
    address: &str,
) -> Result<Option<String>, DirectoryError> {
    Ok(conn
        .prepare_cached("SELECT password_hash FROM users WHERE address = ?1")?
        .query_row([address], |r| r.get(0))
        .optional()?)
}

/// A full name as stored: trimmed, None when empty; refused with line
/// breaks or control characters (it appears in VRFY replies) or past
/// [`MAX_FULL_NAME_LEN`].
pub fn check_full_name(name: Option<&str>) -> Result<Option<&str>, DirectoryError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    // The name appears in VRFY replies: no line breaks, bounded length.
    if name.len() > MAX_FULL_NAME_LEN || name.chars().any(char::is_control) {
        return Err(DirectoryError::InvalidAddress(format!(
            "{name:?} (not a usable full name: control characters or longer than \
             {MAX_FULL_NAME_LEN} bytes)"
        )));
    }
    Ok(Some(name))
}

impl Lookup for Connection {
    fn user_exists(&self, address: &str) -> Result<bool, DirectoryError> {
        user_exists(self, address)
    }

    fn group_targets(&self, group: Group, address: &str) -> Result<Vec<String>, DirectoryError> {
        group_targets(self, group, address)
    }

    fn forward(&self, address: &str) -> Result<Option<Forward>, DirectoryError> {
        load_forward(self, address)
    }

    fn full_name(&self, address: &str) -> Result<Option<Option<String>>, DirectoryError> {
        Ok(self
            .prepare_cached("SELECT full_name FROM users WHERE address = ?1")?
            .query_row([address], |r| r.get::<_, Option<String>>(0))
            .optional()?)
    }
}

impl DirectoryDb {
    /// Adds a user in one of our domains; returns the canonical address.
    pub fn add_user(
        &self,
        address: &str,
        full_name: Option<&str>,
        password: &str,
    ) -> Result<String, DirectoryError> {
        let address = self.canonical_local(address)?;
        let full_name = check_full_name(full_name)?;
        let hash = self.hasher.hash(password)?;
        let scram = self.new_scram_keys(password)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if user_exists(&tx, &address)?
            || group_exists(&tx, Group::Alias, &address)?
            || group_exists(&tx, Group::List, &address)?
        {
            return Err(DirectoryError::AlreadyExists(address));
        }
        let local_folded = crate::schema::fold(crate::address::local_part(&address));
        let name_folded = full_name.map(crate::schema::fold);
        tx.execute(
            "INSERT INTO users (address, full_name, password_hash, local_folded, name_folded)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![address, full_name, hash, local_folded, name_folded],
        )?;
        crate::scram::write_keys(&tx, &address, scram.as_ref(), false)?;
        tx.commit()?;
        tracing::info!(%address, "user added");
        Ok(address)
    }

    /// Removes a user and its forward. The mailbox is the store's business.
    pub fn delete_user(&self, address: &str) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM users WHERE address = ?1", [&address])? == 0 {
            return Err(DirectoryError::NotFound(address));
        }
        tx.execute("DELETE FROM forwards WHERE address = ?1", [&address])?;
        tx.commit()?;
        tracing::info!(%address, "user deleted");
        Ok(())
    }

    /// Replaces a user's password, and with it the SCRAM keys (cleared
    /// when SCRAM is off, so keys of the old password cannot outlive it).
    pub fn set_password(&self, address: &str, password: &str) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let hash = self.hasher.hash(password)?;
        let scram = self.new_scram_keys(password)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE address = ?1",
            params![address, hash],
        )?;
        if n == 0 {
            return Err(DirectoryError::NotFound(address));
        }
        crate::scram::write_keys(&tx, &address, scram.as_ref(), false)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a user's own quota limits.
    pub fn set_quota(&self, address: &str, quota: UserQuota) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let as_sql = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let n = self.lock().execute(
            "UPDATE users SET quota_storage = ?2, quota_messages = ?3 WHERE address = ?1",
            params![address, as_sql(quota.storage), as_sql(quota.messages)],
        )?;
        if n == 0 {
            return Err(DirectoryError::NotFound(address));
        }
        Ok(())
    }

    /// A user's own quota limits; None when there is no such user.
    pub fn quota(&self, address: &str) -> Result<Option<UserQuota>, DirectoryError> {
        let address = self.canonical(address)?;
        let conn = self.lock();
        let from_sql = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(conn
            .query_row(
                "SELECT quota_storage, quota_messages FROM users WHERE address = ?1",
                [&address],
                |r| {
                    Ok(UserQuota {
                        storage: from_sql(r.get(0)?),
                        messages: from_sql(r.get(1)?),
                    })
                },
            )
            .optional()?)
    }

    /// Every user with a limit of their own, sorted by address.
    pub fn quotas(&self) -> Result<Vec<(String, UserQuota)>, DirectoryError> {
        let conn = self.lock();
        let from_sql = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        let mut stmt = conn.prepare(
            "SELECT address, quota_storage, quota_messages FROM users \
             WHERE quota_storage IS NOT NULL OR quota_messages IS NOT NULL ORDER BY address",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                UserQuota {
                    storage: from_sql(r.get(1)?),
                    messages: from_sql(r.get(2)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every user, sorted by address.
    pub fn list_users(&self) -> Result<Vec<User>, DirectoryError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT address, full_name FROM users ORDER BY address")?;
        let rows = stmt.query_map([], |r| {
            Ok(User {
                address: r.get(0)?,
                full_name: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The user at `address`, if there is one.
    pub fn user(&self, address: &str) -> Result<Option<User>, DirectoryError> {
        let address = self.canonical(address)?;
        let conn = self.lock();
        Ok(conn
            .query_row(
                "SELECT address, full_name FROM users WHERE address = ?1",
                [&address],
                |r| {
                    Ok(User {
                        address: r.get(0)?,
                        full_name: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Creates an alias, or adds targets to an existing one. The address must
    /// be in one of our domains; targets may be local or remote.
    /// Creates an alias, or adds targets to an existing one. Refused when
    /// the alias would reach itself; the warnings name targets in our
    /// domains that do not exist (yet).
    pub fn add_alias(
        &self,
        address: &str,
        targets: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        self.add_group(Group::Alias, address, targets)
    }

    /// Removes targets from an alias; no targets removes the whole alias.
    pub fn del_alias(&self, address: &str, targets: &[String]) -> Result<(), DirectoryError> {
        self.del_group(Group::Alias, address, targets)
    }

    /// Every alias with its targets, sorted by address, targets in insertion
    /// order.
    pub fn aliases(&self) -> Result<Vec<(String, Vec<String>)>, DirectoryError> {
        self.all_groups(Group::Alias)
    }

    /// Creates a mailing list, or adds members to an existing one.
    /// Like [`DirectoryDb::add_alias`], for a list.
    pub fn add_list(
        &self,
        address: &str,
        members: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        self.add_group(Group::List, address, members)
    }

    /// Removes members from a list; no members removes the whole list.
    pub fn del_list(&self, address: &str, members: &[String]) -> Result<(), DirectoryError> {
        self.del_group(Group::List, address, members)
    }

    /// Every list with its members, sorted by address, members in insertion
    /// order.
    pub fn lists(&self) -> Result<Vec<(String, Vec<String>)>, DirectoryError> {
        self.all_groups(Group::List)
    }

    fn add_group(
        &self,
        group: Group,
        address: &str,
        targets: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        let address = self.canonical_local(address)?;
        if targets.is_empty() {
            return Err(DirectoryError::InvalidAddress(format!(
                "{address} (no {}s given)",
                group.column()
            )));
        }
        let targets = targets
            .iter()
            .map(|t| self.canonical(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if user_exists(&tx, &address)? || group_exists(&tx, group.other(), &address)? {
            return Err(DirectoryError::AlreadyExists(address));
        }
        {
            let sql = format!(
                "INSERT OR IGNORE INTO {} (address, {}) VALUES (?1, ?2)",
                group.table(),
                group.column()
            );
            let mut stmt = tx.prepare(&sql)?;
            for t in &targets {
                stmt.execute([&address, t])?;
            }
        }
        // Checked with the new rows in place; returning drops the
        // transaction, which rolls them back.
        if let Some(path) = self.cycle_through(&*tx, &address)? {
            return Err(DirectoryError::InvalidAddress(format!(
                "{address} (it would deliver to itself: {})",
                path.join(" -> ")
            )));
        }
        let mut warnings = Vec::new();
        for t in &targets {
            if self.is_dangling(&*tx, t)? {
                tracing::warn!(%address, target = %t, "group target does not exist");
                warnings.push(format!(
                    "{t} does not exist (yet): mail to {address} skips it until it does"
                ));
            }
        }
        tx.commit()?;
        tracing::info!(%address, ?group, added = targets.len(), "directory group updated");
        Ok(warnings)
    }

    fn del_group(
        &self,
        group: Group,
        address: &str,
        targets: &[String],
    ) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let targets = targets
            .iter()
            .map(|t| self.canonical(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !group_exists(&tx, group, &address)? {
            return Err(DirectoryError::NotFound(address));
        }
        if targets.is_empty() {
            let sql = format!("DELETE FROM {} WHERE address = ?1", group.table());
            tx.execute(&sql, [&address])?;
        } else {
            let sql = format!(
                "DELETE FROM {} WHERE address = ?1 AND {} = ?2",
                group.table(),
                group.column()
            );
            let mut stmt = tx.prepare(&sql)?;
            for t in &targets {
                if stmt.execute([&address, t])? == 0 {
                    return Err(DirectoryError::NotFound(format!("{t} in {address}")));
                }
            }
        }
        tx.commit()?;
        tracing::info!(%address, ?group, "directory group reduced");
        Ok(())
    }

    fn all_groups(&self, group: Group) -> Result<Vec<(String, Vec<String>)>, DirectoryError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT address, {} FROM {} ORDER BY address, rowid",
            group.column(),
            group.table()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        while let Some(row) = rows.next()? {
            let address: String = row.get(0)?;
            let target: String = row.get(1)?;
            match out.last_mut() {
                Some((a, ts)) if *a == address => ts.push(target),
                _ => out.push((address, vec![target])),
            }
        }
        Ok(out)
    }

    /// Forwards an existing user's mail (RFC 5321 3.4). `keep` also delivers
    /// to the user's mailbox; `refuse` answers 551 instead of forwarding.
    pub fn set_forward(
        &self,
        address: &str,
        target: &str,
        keep: bool,
        refuse: bool,
    ) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let target = self.canonical(target)?;
        if target == address {
            return Err(DirectoryError::InvalidAddress(format!(
                "{target} (a user cannot forward to itself)"
            )));
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !user_exists(&tx, &address)? {
            return Err(DirectoryError::NotFound(address));
        }
        tx.execute(
            "INSERT INTO forwards (address, target, keep, refuse) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (address) DO UPDATE
             SET target = excluded.target, keep = excluded.keep, refuse = excluded.refuse",
            params![address, target, keep, refuse],
        )?;
        tx.commit()?;
        tracing::info!(%address, %target, keep, refuse, "forward set");
        Ok(())
    }

    /// Removes a user's forward.
    pub fn del_forward(&self, address: &str) -> Result<(), DirectoryError> {
        let address = self.canonical(address)?;
        let conn = self.lock();
        if conn.execute("DELETE FROM forwards WHERE address = ?1", [&address])? == 0 {
            return Err(DirectoryError::NotFound(format!("forward for {address}")));
        }
        Ok(())
    }

    /// A user's forward, if set.
    pub fn forward(&self, address: &str) -> Result<Option<Forward>, DirectoryError> {
        let address = self.canonical(address)?;
        load_forward(&self.lock(), &address)
    }
}

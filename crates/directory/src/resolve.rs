//! RCPT resolution (RFC 5321 3.3, 3.4, 4.5.1; SPEC 1, 4): where mail for
//! one address goes after aliases, lists, forwards, `+detail`, postmaster
//! and catch-all.
//!
//! Lookup order for an address in one of our domains:
//! 1. an exact user, alias or list;
//! 2. `base+detail@d` → the exact entry `base@d`;
//! 3. `postmaster@d` → the explicit entry `postmaster@<primary>`, else the
//!    implicit account `postmaster@<primary>` (it always exists);
//! 4. the domain's catch-all target;
//! 5. unknown.
//!
//! Expansion of aliases and lists is recursive with a visited set (cycles
//! are cut), a depth bound and a bound on the addresses examined; results
//! are de-duplicated, so a user reached twice gets one copy. Inside an
//! expansion a forwarded user contributes its target (and itself when
//! `keep`), without the 251; unknown local targets are skipped with a
//! warning.
//!
//! Resolutions are cached (issue 18: RCPT's SQL was a visible share of the
//! SMTP accept path) and the whole cache is dropped whenever the directory
//! database changed, in this process or another: every lookup first reads
//! `PRAGMA data_version` on a connection that never writes, which moves
//! on every commit of any other connection to the file. A change the CLI
//! committed before a RCPT is thus seen by that RCPT, as SPEC 7 promises
//! ("CLI changes take effect at once").

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use crate::address;
use crate::admin::Group;
use crate::{DirectoryCore, DirectoryDb, DirectoryError, Lookup, Resolution};

/// How deep aliases and lists may nest. Sendmail's alias expansion and
/// Postfix's `virtual_alias_recursion_limit` use a similar small bound;
/// deeper nesting is a configuration mistake.
pub const MAX_EXPANSION_DEPTH: usize = 16;

/// How many addresses one expansion may examine (and so deliver to). Larger
/// lists belong in a real list manager; Postfix's
/// `virtual_alias_expansion_limit` defaults to 1000 too.
pub const MAX_EXPANSION_TARGETS: usize = 1000;

/// Most resolutions the cache keeps; past it the cache starts over (a
/// bound on memory, not a policy: the next lookups refill it).
pub const RESOLVE_CACHE_ENTRIES: usize = 4096;

/// Resolutions valid for one `data_version` of the directory database.
pub(crate) struct ResolveCache {
    /// Only ever reads `PRAGMA data_version`: a connection's own commits do
    /// not move its data version, so this one must never write.
    watch: Connection,
    version: Option<i64>,
    entries: HashMap<String, Resolution>,
}

impl ResolveCache {
    pub(crate) fn new(watch: Connection) -> ResolveCache {
        ResolveCache {
            watch,
            version: None,
            entries: HashMap::new(),
        }
    }

    /// Drops every entry if the database changed since the last call.
    fn revalidate(&mut self) -> Result<(), DirectoryError> {
        let version = self
            .watch
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))?;
        if self.version != Some(version) {
            self.entries.clear();
            self.version = Some(version);
        }
        Ok(())
    }
}

/// What an address names, after the lookup order above.
#[derive(Debug)]
enum Located {
    User(String),
    /// `postmaster@<primary>` with no entry: the store creates the account.
    ImplicitPostmaster(String),
    Group(String, Vec<String>),
    CatchAll(String),
    Unknown,
}

/// The results of one expansion.
struct Expansion {
    local: Vec<String>,
    remote: Vec<String>,
    /// Results already pushed (one copy per recipient).
    delivered: HashSet<String>,
    /// Entries already expanded (cycle cut).
    visited: HashSet<String>,
    /// Addresses examined so far.
    examined: usize,
    /// Whether a bound was hit (logged once).
    truncated: bool,
}

impl Expansion {
    fn new() -> Expansion {
        Expansion {
            local: Vec::new(),
            remote: Vec::new(),
            delivered: HashSet::new(),
            visited: HashSet::new(),
            examined: 0,
            truncated: false,
        }
    }

    fn push_local(&mut self, account: &str) {
        if self.delivered.insert(account.to_string()) {
            self.local.push(account.to_string());
        }
    }

    fn push_remote(&mut self, address: &str) {
        if self.delivered.insert(address.to_string()) {
            self.remote.push(address.to_string());
        }
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }

    fn into_deliver(self, top: &str) -> Resolution {
        if self.is_empty() {
            // Every target was skipped: a 550 tells the sender, where an
            // accepted message delivered nowhere would be lost silently.
            tracing::warn!(address = top, "expansion reached no recipient");
            return Resolution::Unknown;
        }
        Resolution::Deliver {
            local: self.local,
            remote: self.remote,
        }
    }
}

/// The entry stored exactly at `address`: user, alias or list.
fn entry(conn: &dyn Lookup, address: &str) -> Result<Option<Located>, DirectoryError> {
    if conn.user_exists(address)? {
        return Ok(Some(Located::User(address.to_string())));
    }
    for group in [Group::Alias, Group::List] {
        let targets = conn.group_targets(group, address)?;
        if !targets.is_empty() {
            return Ok(Some(Located::Group(address.to_string(), targets)));
        }
    }
    Ok(None)
}

impl DirectoryDb {
    /// RCPT resolution of a fully qualified address, from the cache when
    /// the database has not changed since it was made.
    pub fn resolve(&self, address: &str) -> Result<Resolution, DirectoryError> {
        let mut cache = self
            .resolve_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.revalidate()?;
        if let Some(found) = cache.entries.get(address) {
            return Ok(found.clone());
        }
        let resolution = self.core.resolve_in(&*self.lock(), address)?;
        if cache.entries.len() >= RESOLVE_CACHE_ENTRIES {
            cache.entries.clear();
        }
        cache
            .entries
            .insert(address.to_string(), resolution.clone());
        Ok(resolution)
    }
}

impl DirectoryCore {
    /// RCPT resolution of a fully qualified address, reading `conn`.
    pub fn resolve_in(
        &self,
        conn: &dyn Lookup,
        address: &str,
    ) -> Result<Resolution, DirectoryError> {
        let address = self.canonical(address)?;
        let (_, domain) = address::split(&address)?;
        if !self.is_local_domain(domain) {
            return Ok(Resolution::NotLocal);
        }
        let mut exp = Expansion::new();
        exp.visited.insert(address.clone());
        match self.locate(conn, &address)? {
            Located::Unknown => Ok(Resolution::Unknown),
            Located::ImplicitPostmaster(account) => Ok(Resolution::Deliver {
                local: vec![account],
                remote: Vec::new(),
            }),
            Located::User(user) => {
                let Some(fwd) = conn.forward(&user)? else {
                    return Ok(Resolution::Deliver {
                        local: vec![user],
                        remote: Vec::new(),
                    });
                };
                if fwd.refuse {
                    return Ok(Resolution::Refuse { to: fwd.target });
                }
                exp.visited.insert(user.clone());
                if fwd.keep {
                    exp.push_local(&user);
                }
                self.expand(conn, &fwd.target, 1, &mut exp)?;
                Ok(Resolution::Forward {
                    to: fwd.target,
                    local: exp.local,
                    remote: exp.remote,
                })
            }
            Located::Group(entry, targets) => {
                exp.visited.insert(entry);
                for t in &targets {
                    self.expand(conn, t, 1, &mut exp)?;
                }
                Ok(exp.into_deliver(&address))
            }
            Located::CatchAll(target) => {
                self.expand(conn, &target, 1, &mut exp)?;
                Ok(exp.into_deliver(&address))
            }
        }
    }

    /// The chain of aliases and lists (and catch-alls) through which the
    /// group at `address` reaches itself, if any: `[address, .., address]`.
    /// Resolution cuts cycles, but a group that delivers to itself delivers
    /// to nobody on the cycle (`alias add a1 a2`, `alias add a2 a1`: 550
    /// User unknown), so adding one is refused. Bounded like an expansion.
    pub fn cycle_through(
        &self,
        conn: &dyn Lookup,
        address: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        let mut seen = HashSet::from([address.to_string()]);
        let mut stack = vec![vec![address.to_string()]];
        let mut examined = 0usize;
        while let Some(path) = stack.pop() {
            let Some(last) = path.last() else { continue };
            let next = match self.locate(conn, last)? {
                Located::Group(_, targets) => targets,
                Located::CatchAll(target) => vec![target],
                _ => continue,
            };
            for target in next {
                examined += 1;
                if examined > MAX_EXPANSION_TARGETS {
                    return Ok(None);
                }
                let Ok(target) = self.canonical(&target) else {
                    continue;
                };
                let local = address::split(&target).is_ok_and(|(_, d)| self.is_local_domain(d));
                if !local {
                    continue;
                }
                // The entry the target names: itself, or its +detail base.
                let named = match self.locate(conn, &target)? {
                    Located::Group(entry, _) => entry,
                    _ => target.clone(),
                };
                let mut longer = path.clone();
                longer.push(target);
                if named == address {
                    return Ok(Some(longer));
                }
                if seen.insert(named) {
                    stack.push(longer);
                }
            }
        }
        Ok(None)
    }

    /// True when `target` (canonical) is in one of our domains and names
    /// nothing: mail through it would be skipped.
    pub fn is_dangling(&self, conn: &dyn Lookup, target: &str) -> Result<bool, DirectoryError> {
        let local = address::split(target).is_ok_and(|(_, d)| self.is_local_domain(d));
        Ok(local && matches!(self.locate(conn, target)?, Located::Unknown))
    }

    /// Applies the lookup order (module doc) to a canonical local address.
    fn locate(&self, conn: &dyn Lookup, address: &str) -> Result<Located, DirectoryError> {
        if let Some(found) = entry(conn, address)? {
            return Ok(found);
        }
        let base = address::detail_base(address);
        if let Some(base) = &base
            && let Some(found) = entry(conn, base)?
        {
            return Ok(found);
        }
        let effective = base.as_deref().unwrap_or(address);
        let (local, domain) = address::split(effective)?;
        if local == "postmaster" {
            let primary = format!("postmaster@{}", self.primary_domain());
            if domain != self.primary_domain()
                && let Some(found) = entry(conn, &primary)?
            {
                return Ok(found);
            }
            return Ok(Located::ImplicitPostmaster(primary));
        }
        if let Some(target) = self.catch_all.get(domain) {
            return Ok(Located::CatchAll(target.clone()));
        }
        Ok(Located::Unknown)
    }

    /// Adds where mail for `address` (a canonical target) goes to `exp`.
    fn expand(
        &self,
        conn: &dyn Lookup,
        address: &str,
        depth: usize,
        exp: &mut Expansion,
    ) -> Result<(), DirectoryError> {
        if depth > MAX_EXPANSION_DEPTH || exp.examined >= MAX_EXPANSION_TARGETS {
            if !exp.truncated {
                tracing::warn!(
                    address,
                    depth,
                    examined = exp.examined,
                    "alias/list expansion bound reached; the rest is skipped"
                );
                exp.truncated = true;
            }
            return Ok(());
        }
        exp.examined += 1;
        // Stored targets are canonical, but one written by hand or by an
        // older version is canonicalised again rather than trusted.
        let address = match self.canonical(address) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(address, error = %e, "unusable target skipped");
                return Ok(());
            }
        };
        let (_, domain) = address::split(&address)?;
        if !self.is_local_domain(domain) {
            exp.push_remote(&address);
            return Ok(());
        }
        if !exp.visited.insert(address.clone()) {
            return Ok(());
        }
        let located = self.locate(conn, &address)?;
        // Reached through +detail or postmaster, the entry itself may
        // already have been expanded under its own name.
        if let Located::User(entry) | Located::Group(entry, _) = &located
            && *entry != address
            && !exp.visited.insert(entry.clone())
        {
            return Ok(());
        }
        match located {
            Located::Unknown => {
                tracing::warn!(address, "unknown local target in an alias or list skipped");
            }
            Located::ImplicitPostmaster(account) => exp.push_local(&account),
            Located::User(user) => match conn.forward(&user)? {
                None => exp.push_local(&user),
                Some(fwd) if fwd.refuse => {
                    // The user has left and asked not to be forwarded to;
                    // a 551 cannot be given inside an expansion.
                    tracing::warn!(
                        user,
                        to = fwd.target,
                        "refusing forward inside an alias or list: skipped"
                    );
                }
                Some(fwd) => {
                    if fwd.keep {
                        exp.push_local(&user);
                    }
                    self.expand(conn, &fwd.target, depth + 1, exp)?;
                }
            },
            Located::Group(_, targets) => {
                for t in &targets {
                    self.expand(conn, t, depth + 1, exp)?;
                }
            }
            Located::CatchAll(target) => self.expand(conn, &target, depth + 1, exp)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-specific: rows written by hand. Resolution's behaviour is in
    //! the conformance suite (`conformance/resolve.rs`).

    use crate::Resolution;
    use crate::testutil::*;

    #[test]
    fn alias_cycle_terminates() {
        let t = open(&["example.org"]);
        t.dir.add_user("u@example.org", None, "pw").unwrap();
        // `alias add` refuses cycles now; a database written before that,
        // or by hand, may still hold them.
        t.dir
            .lock()
            .execute_batch(
                "INSERT INTO aliases VALUES ('a@example.org', 'b@example.org');
                 INSERT INTO aliases VALUES ('b@example.org', 'a@example.org');
                 INSERT INTO aliases VALUES ('b@example.org', 'u@example.org');
                 INSERT INTO aliases VALUES ('c@example.org', 'c+x@example.org');",
            )
            .unwrap();
        assert_eq!(
            t.dir.resolve("a@example.org").unwrap(),
            deliver(&["u@example.org"], &[])
        );
        // A cycle with nobody on it reaches no one: 550 rather than a loss.
        assert_eq!(t.dir.resolve("c@example.org").unwrap(), Resolution::Unknown);
    }
}

//! Questions about people rather than mail routing: VRFY and EXPN
//! (RFC 5321 3.5, SPEC 1 and 4), login name resolution and password checks
//! (SPEC 5, 7).
//!
//! `authenticate` verifies against a dummy hash when the login names nobody,
//! so the time a failed login takes does not tell which names exist.

use rusqlite::Connection;

use crate::admin::{self, Group};
use crate::{DirectoryDb, DirectoryError, Member, User};

/// VRFY's lookup: the exact address (when the query is one), the local
/// part, or the full name, each on an indexed column; folded in Rust
/// (`schema::fold`) because SQLite's `lower()` is ASCII-only.
pub(crate) const VRFY_SQL: &str = "SELECT address, full_name FROM users
     WHERE address = ?1 OR local_folded = ?2 OR name_folded = ?3
     ORDER BY address";

fn vrfy_rows(
    conn: &Connection,
    exact: Option<&str>,
    local: Option<&str>,
    name: &str,
) -> Result<Vec<User>, DirectoryError> {
    let mut stmt = conn.prepare_cached(VRFY_SQL)?;
    let rows = stmt.query_map(rusqlite::params![exact, local, name], |r| {
        Ok(User {
            address: r.get(0)?,
            full_name: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl DirectoryDb {
    /// VRFY (SPEC 4): matches the exact address, the local part in any of
    /// our domains, or the full name, case-insensitively; returns every
    /// matching user, sorted by address (several = ambiguous, 553). The query
    /// may be "<addr>", "addr", a bare local part or a full name.
    pub fn vrfy(&self, query: &str) -> Result<Vec<User>, DirectoryError> {
        let query = query.trim();
        let query = query
            .strip_prefix('<')
            .and_then(|q| q.strip_suffix('>'))
            .unwrap_or(query)
            .trim();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let folded = crate::schema::fold(query);
        // An address: only the exact user (after canonicalisation).
        let exact = if query.contains('@') {
            self.canonical(query).ok()
        } else {
            None
        };
        // NULL never equals: an address query does not match local parts,
        // a bare name has no exact address.
        let local = exact.is_none().then_some(folded.as_str());
        vrfy_rows(&self.lock(), exact.as_deref(), local, &folded)
    }

    /// EXPN: Some(members) when the address (qualified) is a mailing list,
    /// None otherwise. Members in insertion order, with full names for local
    /// users.
    pub fn expn(&self, address: &str) -> Result<Option<Vec<Member>>, DirectoryError> {
        let address = self.canonical(address)?;
        let conn = self.lock();
        let members = admin::group_targets(&conn, Group::List, &address)?;
        if members.is_empty() {
            return Ok(None);
        }
        let mut stmt = conn.prepare_cached("SELECT full_name FROM users WHERE address = ?1")?;
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let full_name = stmt
                .query_map([&m], |r| r.get::<_, Option<String>>(0))?
                .next()
                .transpose()?
                .flatten();
            out.push(Member {
                address: m,
                full_name,
            });
        }
        Ok(Some(out))
    }

    /// Login name resolution (SPEC 7): a full address; or a bare local part
    /// = that user in the primary domain, else the ONE user with that local
    /// part in any domain, else None. Aliases and lists cannot log in.
    pub fn find_login(&self, login: &str) -> Result<Option<String>, DirectoryError> {
        let login = login.trim();
        if login.is_empty() {
            return Ok(None);
        }
        if login.contains('@') {
            // A login that is not even an address names nobody.
            let Ok(address) = self.canonical(login) else {
                return Ok(None);
            };
            let conn = self.lock();
            return Ok(admin::user_exists(&conn, &address)?.then_some(address));
        }
        let local = login.to_lowercase();
        let primary = format!("{local}@{}", self.primary_domain());
        let conn = self.lock();
        if admin::user_exists(&conn, &primary)? {
            return Ok(Some(primary));
        }
        let mut found = None;
        for domain in self.domains() {
            let candidate = format!("{local}@{domain}");
            if admin::user_exists(&conn, &candidate)? {
                if found.is_some() {
                    return Ok(None);
                }
                found = Some(candidate);
            }
        }
        Ok(found)
    }

    /// Some(canonical account) when `login` resolves and the password
    /// matches (the tests' synchronous form of the trait's).
    #[cfg(test)]
    pub fn authenticate(
        &self,
        login: &str,
        password: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let found = self.login_hash(login)?;
        self.check_password(found, password)
    }

    /// The account a login names and its stored hash: the database half
    /// of [`DirectoryDb::authenticate`].
    pub(crate) fn login_hash(
        &self,
        login: &str,
    ) -> Result<Option<(String, String)>, DirectoryError> {
        let Some(account) = self.find_login(login)? else {
            return Ok(None);
        };
        Ok(admin::password_hash(&self.lock(), &account)?.map(|hash| (account, hash)))
    }

    /// The argon2 half of [`DirectoryDb::authenticate`]: no database.
    pub(crate) fn check_password(
        &self,
        found: Option<(String, String)>,
        password: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let Some((account, stored)) = found else {
            // Same work as a real check, so timing does not reveal whether
            // the name exists.
            let dummy = self.dummy_hash()?;
            let _ = self.hasher.verify(&dummy, password)?;
            return Ok(None);
        };
        if self.hasher.verify(&stored, password)? {
            Ok(Some(account))
        } else {
            Ok(None)
        }
    }

    /// A hash with the configured costs, made once.
    fn dummy_hash(&self) -> Result<String, DirectoryError> {
        if let Some(h) = self.dummy_hash.get() {
            return Ok(h.clone());
        }
        let h = self.hasher.hash("mailroom dummy password")?;
        Ok(self.dummy_hash.get_or_init(|| h).clone())
    }
}

#[cfg(test)]
mod tests {
    //! SQLite-specific: the query plan. VRFY's behaviour is in the
    //! conformance suite (`conformance/people.rs`).

    use crate::testutil::open;

    #[test]
    fn vrfy_is_an_indexed_lookup_not_a_scan_of_every_user() {
        let t = open(&["example.org"]);
        let conn = t.dir.lock();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::VRFY_SQL))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(["a@example.org", "a", "a"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{plan:?}"
        );
        for index in ["users_local_folded", "users_name_folded"] {
            assert!(plan.iter().any(|s| s.contains(index)), "{plan:?}");
        }
    }
}

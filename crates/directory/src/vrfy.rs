//! Questions about people rather than mail routing: VRFY and EXPN
//! (RFC 5321 3.5, SPEC 1 and 4), login name resolution and password checks
//! (SPEC 5, 7).
//!
//! `authenticate` verifies against a dummy hash when the login names nobody,
//! so the time a failed login takes does not tell which names exist.

use rusqlite::Connection;

use crate::admin;
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
        let Some(t) = self.vrfy_terms(query) else {
            return Ok(Vec::new());
        };
        vrfy_rows(
            &self.lock(),
            t.exact.as_deref(),
            t.local.as_deref(),
            &t.name,
        )
    }

    /// EXPN: Some(members) when the address (qualified) is a mailing list,
    /// None otherwise. Members in insertion order, with full names for local
    /// users.
    pub fn expn(&self, address: &str) -> Result<Option<Vec<Member>>, DirectoryError> {
        self.expn_in(&*self.lock(), address)
    }

    /// Login name resolution (SPEC 7), see [`crate::DirectoryCore::find_login_in`].
    pub fn find_login(&self, login: &str) -> Result<Option<String>, DirectoryError> {
        self.find_login_in(&*self.lock(), login)
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

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
    use crate::User;
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

    #[test]
    fn vrfy_folds_unicode_case_in_names_and_local_parts() {
        let t = open(&["example.org"]);
        t.dir
            .add_user("Ölaf@example.org", Some("ÅSA Öberg"), "pw")
            .unwrap();
        assert_eq!(t.dir.vrfy("åsa öberg").unwrap().len(), 1);
        assert_eq!(t.dir.vrfy("ÖLAF").unwrap().len(), 1);
        assert_eq!(t.dir.vrfy("<ölaf@EXAMPLE.org>").unwrap().len(), 1);
        assert!(t.dir.vrfy("olaf").unwrap().is_empty());
    }
    use crate::testutil::*;

    fn user(a: &str, n: Option<&str>) -> User {
        User {
            address: a.into(),
            full_name: n.map(Into::into),
        }
    }

    #[test]
    fn vrfy_by_full_name_and_local_part() {
        let t = open(&["example.org", "other.test"]);
        t.dir
            .add_user("fred@example.org", Some("Fred Smith"), "pw")
            .unwrap();
        t.dir
            .add_user("jo@other.test", Some("Jo Bloggs"), "pw")
            .unwrap();
        let fred = vec![user("fred@example.org", Some("Fred Smith"))];
        assert_eq!(t.dir.vrfy("fred smith").unwrap(), fred);
        assert_eq!(t.dir.vrfy("FRED").unwrap(), fred);
        assert_eq!(t.dir.vrfy("<Fred@Example.org>").unwrap(), fred);
        assert_eq!(t.dir.vrfy("fred@example.org").unwrap(), fred);
        assert_eq!(
            t.dir.vrfy("jo").unwrap(),
            vec![user("jo@other.test", Some("Jo Bloggs"))]
        );
        assert!(t.dir.vrfy("fred@other.test").unwrap().is_empty());
        assert!(t.dir.vrfy("nobody").unwrap().is_empty());
        assert!(t.dir.vrfy("").unwrap().is_empty());
    }

    #[test]
    fn vrfy_ambiguous_returns_all() {
        let t = open(&["example.org", "other.test"]);
        t.dir
            .add_user("smith@example.org", Some("John Smith"), "pw")
            .unwrap();
        t.dir.add_user("smith@other.test", None, "pw").unwrap();
        t.dir
            .add_user("js@example.org", Some("smith"), "pw")
            .unwrap();
        let got: Vec<String> = t
            .dir
            .vrfy("Smith")
            .unwrap()
            .into_iter()
            .map(|u| u.address)
            .collect();
        assert_eq!(
            got,
            s(&["js@example.org", "smith@example.org", "smith@other.test"])
        );
    }

    #[test]
    fn expn_only_for_lists_with_full_names() {
        let t = open(&["example.org"]);
        t.dir
            .add_user("fred@example.org", Some("Fred Smith"), "pw")
            .unwrap();
        t.dir
            .add_list("l@example.org", &s(&["fred@example.org", "x@remote.test"]))
            .unwrap();
        t.dir
            .add_alias("a@example.org", &s(&["fred@example.org"]))
            .unwrap();
        let members = t.dir.expn("L@example.org").unwrap().unwrap();
        assert_eq!(members[0].full_name.as_deref(), Some("Fred Smith"));
        assert_eq!(members[1].address, "x@remote.test");
        assert_eq!(members[1].full_name, None);
        assert_eq!(t.dir.expn("a@example.org").unwrap(), None);
        assert_eq!(t.dir.expn("fred@example.org").unwrap(), None);
    }

    #[test]
    fn find_login_bare_local_part_rules() {
        let t = open(&["example.org", "other.test", "third.test"]);
        t.dir.add_user("amy@other.test", None, "pw").unwrap();
        t.dir.add_user("bob@other.test", None, "pw").unwrap();
        t.dir.add_user("bob@third.test", None, "pw").unwrap();
        t.dir.add_user("cat@example.org", None, "pw").unwrap();
        t.dir.add_user("cat@other.test", None, "pw").unwrap();
        // Unique in a secondary domain.
        assert_eq!(
            t.dir.find_login("Amy").unwrap().as_deref(),
            Some("amy@other.test")
        );
        // Ambiguous without the primary domain.
        assert_eq!(t.dir.find_login("bob").unwrap(), None);
        // The primary domain first.
        assert_eq!(
            t.dir.find_login("cat").unwrap().as_deref(),
            Some("cat@example.org")
        );
        // A full address is taken as is.
        assert_eq!(
            t.dir.find_login("Bob@Third.test").unwrap().as_deref(),
            Some("bob@third.test")
        );
        assert_eq!(t.dir.find_login("nobody").unwrap(), None);
        assert_eq!(t.dir.find_login("a b@@").unwrap(), None);
    }

    #[test]
    fn authenticate_wrong_password_is_none() {
        let t = open(&["example.org"]);
        t.dir.add_user("u@example.org", None, "right").unwrap();
        assert_eq!(t.dir.authenticate("u", "wrong").unwrap(), None);
        assert_eq!(t.dir.authenticate("u@example.org", "").unwrap(), None);
        assert_eq!(t.dir.authenticate("nobody", "right").unwrap(), None);
        assert_eq!(
            t.dir
                .authenticate("U@example.org", "right")
                .unwrap()
                .as_deref(),
            Some("u@example.org")
        );
        t.dir.set_password("u@example.org", "new").unwrap();
        assert_eq!(t.dir.authenticate("u", "right").unwrap(), None);
        assert_eq!(
            t.dir.authenticate("u", "new").unwrap().as_deref(),
            Some("u@example.org")
        );
    }

    #[test]
    fn alias_cannot_log_in() {
        let t = open(&["example.org"]);
        t.dir.add_user("u@example.org", None, "pw").unwrap();
        t.dir
            .add_alias("a@example.org", &s(&["u@example.org"]))
            .unwrap();
        t.dir
            .add_list("l@example.org", &s(&["u@example.org"]))
            .unwrap();
        assert_eq!(t.dir.find_login("a@example.org").unwrap(), None);
        assert_eq!(t.dir.find_login("l").unwrap(), None);
        assert_eq!(t.dir.authenticate("a@example.org", "pw").unwrap(), None);
        // Nor the implicit postmaster.
        assert_eq!(t.dir.find_login("postmaster").unwrap(), None);
    }
}

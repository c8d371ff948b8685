//! [`DirectoryCore`]: everything of a directory that is not its storage,
//! shared by every backend so that the rules exist once (STYLE.md: never
//! two copies): the configured domains and catch-alls, address
//! canonicalisation, RCPT resolution (`resolve.rs`), VRFY's folding, login
//! name resolution, password hashing and checks, SCRAM keys and the fake
//! ones of unknown names.
//!
//! A backend reads its rows through [`Lookup`], a synchronous trait: the
//! SQLite backend implements it on its connection (on its query thread),
//! the PostgreSQL one (`store_pg::PgDirectory`) on a connection driven
//! from a blocking thread. Writes are the backend's own SQL; the checks
//! around them (cycles, dangling targets, full names) come from here.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use ring::hmac;

use crate::admin::Group;
use crate::{
    DEFAULT_SCRAM_ITERATIONS, DirectoryConfig, DirectoryError, Forward, address, password,
};

/// What resolution, EXPN and logins read from a backend's rows; every
/// address is canonical. A backend answers from one connection (inside a
/// write, from its transaction, so checks see the rows being added).
pub trait Lookup {
    /// Whether a user is stored at exactly `address`.
    fn user_exists(&self, address: &str) -> Result<bool, DirectoryError>;
    /// The targets of the alias (members of the list) at exactly
    /// `address`, in insertion order; empty when there is none.
    fn group_targets(&self, group: Group, address: &str) -> Result<Vec<String>, DirectoryError>;
    /// The user's forward, if set.
    fn forward(&self, address: &str) -> Result<Option<Forward>, DirectoryError>;
    /// Some(full name) when a user is stored at `address`.
    fn full_name(&self, address: &str) -> Result<Option<Option<String>>, DirectoryError>;
}

/// The three keys VRFY compares (see `vrfy.rs`): the exact canonical
/// address when the query is one, else the folded local part; and the
/// folded text against full names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrfyTerms {
    pub exact: Option<String>,
    pub local: Option<String>,
    pub name: String,
}

/// The backend-independent part of a directory (module doc).
pub struct DirectoryCore {
    pub(crate) domains: Vec<String>,
    /// Domain -> canonical target.
    pub(crate) catch_all: BTreeMap<String, String>,
    pub(crate) hasher: password::Hasher,
    /// A hash to verify against for unknown logins, made on first use.
    pub(crate) dummy_hash: OnceLock<String>,
    /// `auth.scram`.
    pub(crate) scram: bool,
    pub(crate) scram_iterations: NonZeroU32,
    /// The key of the fake SCRAM salts (`scram.rs`), from the database.
    pub(crate) scram_secret: hmac::Key,
}

impl fmt::Debug for DirectoryCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryCore")
            .field("domains", &self.domains)
            .field("catch_all", &self.catch_all)
            .field("scram", &self.scram)
            .field("scram_iterations", &self.scram_iterations)
            .finish_non_exhaustive()
    }
}

impl DirectoryCore {
    /// Checks and normalises `config` (domains lowercased, the first the
    /// primary; catch-alls in our domains; SCRAM iterations at least RFC
    /// 7677's), then asks `secret` for the stored fake-salt secret (hex,
    /// as [`crate::new_scram_secret`] makes it): a backend opens its
    /// database there, after the config passed, so a bad config touches
    /// nothing.
    pub fn new(
        config: DirectoryConfig,
        secret: impl FnOnce() -> Result<String, DirectoryError>,
    ) -> Result<DirectoryCore, DirectoryError> {
        let mut domains: Vec<String> = Vec::with_capacity(config.domains.len());
        for d in &config.domains {
            let d = address::normalize_domain(d)?;
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        if domains.is_empty() {
            return Err(DirectoryError::UnknownDomain(String::new()));
        }
        let hasher = password::Hasher::new(
            config.argon2_m_cost,
            config.argon2_t_cost,
            config.argon2_p_cost,
            config.max_concurrent_hashes,
        )?;
        let scram_iterations = NonZeroU32::new(config.scram_iterations)
            .filter(|n| n.get() >= DEFAULT_SCRAM_ITERATIONS)
            .ok_or_else(|| {
                DirectoryError::Password(format!(
                    "scram_iterations = {} is below the {DEFAULT_SCRAM_ITERATIONS} that RFC 7677 \
                     asks for",
                    config.scram_iterations
                ))
            })?;
        let mut catch_all = BTreeMap::new();
        for (domain, target) in &config.catch_all {
            let domain = address::normalize_domain(domain)?;
            if !domains.contains(&domain) {
                return Err(DirectoryError::UnknownDomain(domain));
            }
            let target = address::canonical(&domains, target)?;
            catch_all.insert(domain, target);
        }
        let scram_secret = crate::scram::secret_key(&secret()?)?;
        Ok(DirectoryCore {
            domains,
            catch_all,
            hasher,
            dummy_hash: OnceLock::new(),
            scram: config.scram,
            scram_iterations,
            scram_secret,
        })
    }

    /// Our domains, lowercased; the first is the primary.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// How many password checks may run at once: callers bound their own
    /// queue to this.
    pub fn max_concurrent_hashes(&self) -> usize {
        self.hasher.max_concurrent()
    }

    /// The first configured domain.
    pub fn primary_domain(&self) -> &str {
        // new() refuses an empty domain list.
        self.domains.first().map(String::as_str).unwrap_or("")
    }

    /// Whether `domain` is one of ours (case-insensitive).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        address::is_local(&self.domains, domain)
    }

    /// Splits and canonicalises "local@domain" (domain lowercased; local
    /// lowercased only when the domain is local). Bare "local" →
    /// InvalidAddress (callers qualify first).
    pub fn canonical(&self, address: &str) -> Result<String, DirectoryError> {
        address::canonical(&self.domains, address)
    }

    /// The canonical form of an address that must be in one of our domains.
    pub fn canonical_local(&self, address: &str) -> Result<String, DirectoryError> {
        let canonical = self.canonical(address)?;
        let (_, domain) = address::split(&canonical)?;
        if !self.is_local_domain(domain) {
            return Err(DirectoryError::UnknownDomain(domain.to_string()));
        }
        Ok(canonical)
    }

    /// The argon2id hash (PHC string) of a new password.
    pub fn hash_password(&self, password: &str) -> Result<String, DirectoryError> {
        self.hasher.hash(password)
    }

    /// The folded local part and full name a user is stored with, for
    /// VRFY's and logins' indexed columns.
    pub fn folded(&self, address: &str, full_name: Option<&str>) -> (String, Option<String>) {
        (
            crate::schema::fold(address::local_part(address)),
            full_name.map(crate::schema::fold),
        )
    }

    /// VRFY's query (SPEC 4): "<addr>", "addr", a bare local part or a
    /// full name; None when empty (no match).
    pub fn vrfy_terms(&self, query: &str) -> Option<VrfyTerms> {
        let query = query.trim();
        let query = query
            .strip_prefix('<')
            .and_then(|q| q.strip_suffix('>'))
            .unwrap_or(query)
            .trim();
        if query.is_empty() {
            return None;
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
        let local = exact.is_none().then(|| folded.clone());
        Some(VrfyTerms {
            exact,
            local,
            name: folded,
        })
    }

    /// Login name resolution (SPEC 7): a full address; or a bare local
    /// part = that user in the primary domain, else the ONE user with that
    /// local part in any domain, else None. Aliases and lists cannot log in.
    pub fn find_login_in(
        &self,
        rows: &dyn Lookup,
        login: &str,
    ) -> Result<Option<String>, DirectoryError> {
        let login = login.trim();
        if login.is_empty() {
            return Ok(None);
        }
        if login.contains('@') {
            // A login that is not even an address names nobody.
            let Ok(address) = self.canonical(login) else {
                return Ok(None);
            };
            return Ok(rows.user_exists(&address)?.then_some(address));
        }
        let local = login.to_lowercase();
        let primary = format!("{local}@{}", self.primary_domain());
        if rows.user_exists(&primary)? {
            return Ok(Some(primary));
        }
        let mut found = None;
        for domain in self.domains() {
            let candidate = format!("{local}@{domain}");
            if rows.user_exists(&candidate)? {
                if found.is_some() {
                    return Ok(None);
                }
                found = Some(candidate);
            }
        }
        Ok(found)
    }

    /// EXPN: Some(members) when the address (qualified) is a mailing list,
    /// None otherwise. Members in insertion order, with full names for
    /// local users.
    pub fn expn_in(
        &self,
        rows: &dyn Lookup,
        address: &str,
    ) -> Result<Option<Vec<crate::Member>>, DirectoryError> {
        let address = self.canonical(address)?;
        let members = rows.group_targets(Group::List, &address)?;
        if members.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let full_name = rows.full_name(&m)?.flatten();
            out.push(crate::Member {
                address: m,
                full_name,
            });
        }
        Ok(Some(out))
    }

    /// The argon2 half of a login: `found` is the account a login names
    /// and its stored hash. No database.
    pub fn check_password(
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

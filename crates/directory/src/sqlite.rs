//! [`SqliteDirectory`]: the embedded directory backend. Every query runs
//! on tokio's blocking pool, never on the async workers, with bounded
//! concurrency: an async semaphore of [`DIRECTORY_CONNECTIONS`] permits
//! admits one query per connection, so however many sessions look up at
//! once, at most that many blocking threads are busy with directory SQL,
//! and a waiting lookup waits asynchronously rather than on a mutex.
//!
//! Password hashing (argon2 in `user add`, `user passwd` and logins,
//! PBKDF2 for SCRAM keys) runs on the blocking pool too but without a
//! connection permit: a slow hash must not hold up RCPT lookups. Its memory
//! is bounded by the hasher's pool (`password.rs`), its queue by the
//! caller (the server's `Authenticator` waits for one of
//! [`Directory::max_concurrent_hashes`] permits before calling).

use std::path::Path;
use std::sync::Arc;

use proto_common::{ScramKeys, ServerNonce};
use tokio::sync::Semaphore;

use crate::{
    Directory, DirectoryConfig, DirectoryDb, DirectoryError, DirectoryFuture, Forward, Member,
    Resolution, User, UserQuota,
};

/// Connections (and concurrent queries) per open directory. Lookups are
/// short indexed reads, so a few serve many sessions; each one costs a
/// file handle and a page cache. The same figure as the store's
/// `READ_CONNECTIONS`.
pub const DIRECTORY_CONNECTIONS: usize = 4;

/// The SQLite directory of one data directory (`directory.db`). Several
/// may be open on the same file, in this process or others (the CLI):
/// every lookup reads the database, so a change made elsewhere takes
/// effect at once.
pub struct SqliteDirectory {
    db: Arc<DirectoryDb>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for SqliteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDirectory")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

fn task_failed(e: tokio::task::JoinError) -> DirectoryError {
    DirectoryError::Db(format!("directory task failed: {e}"))
}

impl SqliteDirectory {
    /// Opens (creating and migrating as needed) the database at `db_path`.
    /// Refuses a database from a newer mailroom with
    /// [`DirectoryError::NewerSchema`]. Works without a tokio runtime; the
    /// async methods need one when awaited.
    pub fn open(
        db_path: &Path,
        config: DirectoryConfig,
    ) -> Result<SqliteDirectory, DirectoryError> {
        Ok(SqliteDirectory {
            db: Arc::new(DirectoryDb::open(db_path, config)?),
            permits: Arc::new(Semaphore::new(DIRECTORY_CONNECTIONS)),
        })
    }

    /// Runs `f` on the blocking pool once a connection permit is free.
    fn query<T, F>(&self, f: F) -> DirectoryFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectoryDb) -> Result<T, DirectoryError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let permits = Arc::clone(&self.permits);
        Box::pin(async move {
            // Held until the blocking task ends, so a free connection
            // waits for every admitted query.
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| DirectoryError::Db("the directory is closed".into()))?;
            tokio::task::spawn_blocking(move || {
                let r = f(&db);
                drop(permit);
                r
            })
            .await
            .map_err(task_failed)?
        })
    }

    /// Runs `f` (a password hash, and its own short SQL) on the blocking
    /// pool without a connection permit.
    fn hashing<T, F>(&self, f: F) -> DirectoryFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectoryDb) -> Result<T, DirectoryError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(task_failed)?
        })
    }
}

impl Directory for SqliteDirectory {
    fn domains(&self) -> &[String] {
        self.db.domains()
    }

    fn max_concurrent_hashes(&self) -> usize {
        self.db.max_concurrent_hashes()
    }

    fn scram_enabled(&self) -> bool {
        self.db.scram_enabled()
    }

    fn fake_scram_keys(&self, login: &str) -> ScramKeys {
        self.db.fake_scram_keys(login)
    }

    fn scram_server_nonce(&self) -> Result<ServerNonce, DirectoryError> {
        self.db.scram_server_nonce()
    }

    fn resolve<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Resolution> {
        let address = address.to_string();
        self.query(move |db| db.resolve(&address))
    }

    fn vrfy<'a>(&'a self, query: &'a str) -> DirectoryFuture<'a, Vec<User>> {
        let query = query.to_string();
        self.query(move |db| db.vrfy(&query))
    }

    fn expn<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Vec<Member>>> {
        let address = address.to_string();
        self.query(move |db| db.expn(&address))
    }

    fn find_login<'a>(&'a self, login: &'a str) -> DirectoryFuture<'a, Option<String>> {
        let login = login.to_string();
        self.query(move |db| db.find_login(&login))
    }

    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, Option<String>> {
        let login = login.to_string();
        let password = password.to_string();
        Box::pin(async move {
            // The lookup with a connection permit, the argon2 check
            // without one.
            let found = self.query(move |db| db.login_hash(&login)).await?;
            self.hashing(move |db| db.check_password(found, &password))
                .await
        })
    }

    fn scram_keys<'a>(
        &'a self,
        login: &'a str,
    ) -> DirectoryFuture<'a, Option<(String, ScramKeys)>> {
        let login = login.to_string();
        self.query(move |db| db.scram_keys(&login))
    }

    fn fill_scram_keys<'a>(
        &'a self,
        account: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, bool> {
        let (account, password) = (account.to_string(), password.to_string());
        self.hashing(move |db| db.fill_scram_keys(&account, &password))
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
        self.hashing(move |db| db.add_user(&address, full_name.as_deref(), &password))
    }

    fn delete_user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.query(move |db| db.delete_user(&address))
    }

    fn set_password<'a>(&'a self, address: &'a str, password: &'a str) -> DirectoryFuture<'a, ()> {
        let (address, password) = (address.to_string(), password.to_string());
        self.hashing(move |db| db.set_password(&address, &password))
    }

    fn list_users(&self) -> DirectoryFuture<'_, Vec<User>> {
        self.query(|db| db.list_users())
    }

    fn set_quota<'a>(&'a self, address: &'a str, quota: UserQuota) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.query(move |db| db.set_quota(&address, quota))
    }

    fn quota<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<UserQuota>> {
        let address = address.to_string();
        self.query(move |db| db.quota(&address))
    }

    fn quotas(&self) -> DirectoryFuture<'_, Vec<(String, UserQuota)>> {
        self.query(|db| db.quotas())
    }

    fn user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<User>> {
        let address = address.to_string();
        self.query(move |db| db.user(&address))
    }

    fn add_alias<'a>(
        &'a self,
        address: &'a str,
        targets: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>> {
        let (address, targets) = (address.to_string(), targets.to_vec());
        self.query(move |db| db.add_alias(&address, &targets))
    }

    fn del_alias<'a>(&'a self, address: &'a str, targets: &'a [String]) -> DirectoryFuture<'a, ()> {
        let (address, targets) = (address.to_string(), targets.to_vec());
        self.query(move |db| db.del_alias(&address, &targets))
    }

    fn aliases(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>> {
        self.query(|db| db.aliases())
    }

    fn add_list<'a>(
        &'a self,
        address: &'a str,
        members: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>> {
        let (address, members) = (address.to_string(), members.to_vec());
        self.query(move |db| db.add_list(&address, &members))
    }

    fn del_list<'a>(&'a self, address: &'a str, members: &'a [String]) -> DirectoryFuture<'a, ()> {
        let (address, members) = (address.to_string(), members.to_vec());
        self.query(move |db| db.del_list(&address, &members))
    }

    fn lists(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>> {
        self.query(|db| db.lists())
    }

    fn set_forward<'a>(
        &'a self,
        address: &'a str,
        target: &'a str,
        keep: bool,
        refuse: bool,
    ) -> DirectoryFuture<'a, ()> {
        let (address, target) = (address.to_string(), target.to_string());
        self.query(move |db| db.set_forward(&address, &target, keep, refuse))
    }

    fn del_forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()> {
        let address = address.to_string();
        self.query(move |db| db.del_forward(&address))
    }

    fn forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Forward>> {
        let address = address.to_string();
        self.query(move |db| db.forward(&address))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The conformance suite on SQLite: a fresh `directory.db` per test.

    use super::*;

    pub(crate) struct Sqlite(tempfile::TempDir);

    impl crate::conformance::Backend for Sqlite {
        fn open(&self, config: DirectoryConfig) -> Result<Arc<dyn Directory>, DirectoryError> {
            let path = self.0.path().join(crate::DB_FILE_NAME);
            Ok(Arc::new(SqliteDirectory::open(&path, config)?))
        }
    }

    pub(crate) fn sqlite() -> Sqlite {
        Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    crate::directory_conformance!(crate::sqlite::tests::sqlite());
}

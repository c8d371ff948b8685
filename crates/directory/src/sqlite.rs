//! [`SqliteDirectory`]: the embedded directory backend. No query runs on
//! the async workers: each is a job for the directory's own query thread
//! ([`DIRECTORY_QUERY_THREADS`]), answered through a oneshot channel, so
//! however many sessions look up at once, one thread does directory SQL
//! and a waiting lookup waits asynchronously. One thread rather than
//! tokio's blocking pool because of what a lookup costs: a few
//! microseconds of indexed SQL, against a thread wake-up per
//! `spawn_blocking` to one of the pool's idle threads; a busy query thread
//! takes the next queued lookup without a wake-up. Measured on the 2-core
//! VM (20 concurrent RCPT lookups): 9-10 us of CPU per lookup, against
//! 19-23 us through `spawn_blocking`.
//!
//! Password hashing (argon2 in `user add`, `user passwd` and logins,
//! PBKDF2 for SCRAM keys) runs on tokio's blocking pool instead: a slow
//! hash must not hold up RCPT lookups. Its memory is bounded by the
//! hasher's pool (`password.rs`), its queue by the caller (the server's
//! `Authenticator` waits for one of [`Directory::max_concurrent_hashes`]
//! permits before calling).

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use proto_common::{ScramKeys, ServerNonce};
use tokio::sync::oneshot;

use crate::{
    Directory, DirectoryConfig, DirectoryDb, DirectoryError, DirectoryFuture, Forward, Member,
    Resolution, User, UserQuota,
};

/// Connections per open directory: one for the query thread and one for
/// the SQL of a password change or SCRAM key fill-in running beside it
/// (each connection costs a file handle and a page cache).
pub const DIRECTORY_CONNECTIONS: usize = 2;

/// Threads that run the directory's queries. One: a lookup is a few
/// microseconds of SQL, far less than waking a thread, and a busy thread
/// takes the next queued lookup without being woken, so under load one
/// wake serves many lookups. Admin listings run there too; hashing never.
pub const DIRECTORY_QUERY_THREADS: usize = 1;

/// A query for the query threads; it answers through its own channel.
type Job = Box<dyn FnOnce(&DirectoryDb) + Send>;

/// The SQLite directory of one data directory (`directory.db`). Several
/// may be open on the same file, in this process or others (the CLI):
/// every lookup reads the database, so a change made elsewhere takes
/// effect at once.
pub struct SqliteDirectory {
    db: Arc<DirectoryDb>,
    /// The query threads' queue; None once closed. Unbounded: each caller
    /// awaits its answer, so it holds at most one job per waiting session.
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
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

fn closed() -> DirectoryError {
    DirectoryError::Db("the directory is closed".into())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One query thread: takes the next job, runs it, until the queue closes.
/// A job that panics is answered by its dropped channel (an error for its
/// caller) and the thread goes on.
fn serve(db: &DirectoryDb, jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let queue = lock(jobs);
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(db))).is_err() {
            tracing::error!("a directory query panicked");
        }
    }
}

impl SqliteDirectory {
    /// Opens (creating and migrating as needed) the database at `db_path`
    /// and starts its query threads. Refuses a database from a newer
    /// mailroom with [`DirectoryError::NewerSchema`]. Works without a
    /// tokio runtime; the async methods need one when awaited.
    pub fn open(
        db_path: &Path,
        config: DirectoryConfig,
    ) -> Result<SqliteDirectory, DirectoryError> {
        let db = Arc::new(DirectoryDb::open(db_path, config)?);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut dir = SqliteDirectory {
            db,
            jobs: Some(tx),
            threads: Vec::new(),
        };
        for i in 0..DIRECTORY_QUERY_THREADS {
            let (db, rx) = (Arc::clone(&dir.db), Arc::clone(&rx));
            let thread = std::thread::Builder::new()
                .name(format!("directory-{i}"))
                .spawn(move || serve(&db, &rx))
                .map_err(|e| DirectoryError::Db(format!("cannot start a directory thread: {e}")))?;
            dir.threads.push(thread);
        }
        Ok(dir)
    }

    /// Runs `f` on a query thread; resolves with its answer.
    fn query<T, F>(&self, f: F) -> DirectoryFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectoryDb) -> Result<T, DirectoryError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = tx.send(f(db));
        });
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| closed()),
            None => Err(closed()),
        };
        Box::pin(async move {
            sent?;
            rx.await
                .map_err(|_| DirectoryError::Db("a directory query failed".into()))?
        })
    }

    /// Runs `f` (a password hash, and its own short SQL) on tokio's
    /// blocking pool, not on a query thread: a hash takes milliseconds.
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

impl Drop for SqliteDirectory {
    /// Closes the queue; the threads answer what is queued, then exit.
    fn drop(&mut self) {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a directory thread panicked");
            }
        }
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

//! The factories that build the store and the directory from config
//! (`[store] backend`, SPEC 7): everything outside the backend crates
//! holds `Arc<dyn Store>` and `Arc<dyn Directory>` and never names a
//! backend type.
//!
//! `backend = "sqlite"` (the default) is the embedded store and directory
//! in the data directory (`store.db`, `directory.db`). `"postgres"` selects
//! both on one PostgreSQL database (SPEC 6, several nodes): `PgStore` and
//! `PgDirectory` of crates/store-pg, each passing its conformance suite.
//!
//! Opening PostgreSQL is async (it connects, migrates and starts the
//! change-feed listener on the caller's runtime): [`open_store_async`] and
//! [`open_directory_async`]. The synchronous [`open_store`] and
//! [`open_directory`] open it too when called on a multi-threaded tokio
//! runtime (the server's), and refuse it elsewhere.

#![forbid(unsafe_code)]

pub mod backup;

/// The PostgreSQL backend's defaults for `[store]` (pool size, statement
/// timeout, node name) and its shared state, so that the binary need not
/// name the backend crate.
pub mod postgres {
    pub use store_pg::{
        Copied, CopyProgress, CopySource, MIGRATE_BATCH, POOL_SIZE, STATEMENT_TIMEOUT, SharedState,
        TerminalRow, copy_from_sqlite, default_node_id,
    };
}

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use directory::{Directory, DirectoryConfig, DirectoryError, SqliteDirectory};
use store::{SqliteStore, Store, StoreError, StoreOptions};
use store_pg::{PgDirectory, PgOptions, PgStore};

/// The directory's file in the data directory (SQLite backend).
pub const DIRECTORY_FILE: &str = directory::DB_FILE_NAME;

/// Which backend serves the store and the directory (`store.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// SQLite files in the data directory.
    #[default]
    Sqlite,
    /// One PostgreSQL database shared by several nodes (`store.url`).
    Postgres,
}

impl Backend {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            other => Err(format!(
                "store.backend: '{other}' must be \"sqlite\" or \"postgres\""
            )),
        }
    }
}

/// What the factories need from the configuration.
#[derive(Clone)]
pub struct BackendConfig {
    pub backend: Backend,
    /// `store.url` (PostgreSQL); unused by SQLite.
    pub url: String,
    /// `store.pool_size`: pooled connections per node (PostgreSQL).
    pub pool_size: usize,
    /// `store.statement_timeout` (PostgreSQL).
    pub statement_timeout: Duration,
    /// `store.node_id`: this node's name in queue claims (PostgreSQL);
    /// the host name by default.
    pub node_id: String,
    /// The data directory (SQLite's files live there).
    pub data_dir: PathBuf,
    pub store: StoreOptions,
    pub directory: DirectoryConfig,
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("BackendConfig")
            .field("backend", &self.backend)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("store", &self.store)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl BackendConfig {
    /// SQLite in `data_dir` with default tunables: the test kits' backend.
    pub fn sqlite(data_dir: impl Into<PathBuf>, directory: DirectoryConfig) -> BackendConfig {
        BackendConfig {
            backend: Backend::Sqlite,
            url: String::new(),
            pool_size: store_pg::POOL_SIZE,
            statement_timeout: store_pg::STATEMENT_TIMEOUT,
            node_id: store_pg::default_node_id(),
            data_dir: data_dir.into(),
            store: StoreOptions::default(),
            directory,
        }
    }
}

/// Why a backend could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The configured backend is not part of this build.
    NotBuilt(Backend),
    /// PostgreSQL opened synchronously outside a multi-threaded runtime.
    NeedsRuntime,
    Store(StoreError),
    Directory(DirectoryError),
}

impl OpenError {
    /// True when trying again later may work (busy, I/O); false for
    /// configuration problems (a newer schema, a backend not built).
    pub fn is_temporary(&self) -> bool {
        match self {
            OpenError::NotBuilt(_) | OpenError::NeedsRuntime => false,
            OpenError::Store(e) => e.is_temporary(),
            OpenError::Directory(e) => matches!(e, DirectoryError::Db(_)),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotBuilt(b) => write!(
                f,
                "store.backend = \"{}\": that backend is not built yet (issue 21: the store \
                 is, the directory is not); use \"sqlite\"",
                b.name()
            ),
            OpenError::NeedsRuntime => write!(
                f,
                "store.backend = \"postgres\" is opened on a multi-threaded tokio runtime \
                 (open_store_async / open_directory_async elsewhere)"
            ),
            OpenError::Store(e) => e.fmt(f),
            OpenError::Directory(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {}

impl BackendConfig {
    /// The PostgreSQL backend's options of `[store]`.
    pub fn pg_options(&self) -> PgOptions {
        let mut opts = PgOptions::new(self.url.clone());
        opts.pool_size = self.pool_size;
        opts.statement_timeout = self.statement_timeout;
        opts.node_id = self.node_id.clone();
        opts.group_commit_max = self.store.group_commit_max;
        opts
    }
}

/// Runs an async open on the current multi-threaded runtime from
/// synchronous code (`block_in_place` keeps the worker's other tasks
/// going); any other context is [`OpenError::NeedsRuntime`].
fn open_blocking<T>(
    open: impl std::future::Future<Output = Result<T, OpenError>>,
) -> Result<T, OpenError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| OpenError::NeedsRuntime)?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(OpenError::NeedsRuntime);
    }
    tokio::task::block_in_place(|| handle.block_on(open))
}

/// The message store of `config`'s backend, opened (and migrated).
pub fn open_store(config: &BackendConfig) -> Result<Arc<dyn Store>, OpenError> {
    match config.backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&config.data_dir, config.store.clone())
                .map_err(OpenError::Store)?;
            Ok(store)
        }
        Backend::Postgres => open_blocking(open_store_async(config)),
    }
}

/// The directory of `config`'s backend, opened (and migrated).
pub fn open_directory(config: &BackendConfig) -> Result<Arc<dyn Directory>, OpenError> {
    match config.backend {
        Backend::Sqlite => {
            let dir = SqliteDirectory::open(
                &config.data_dir.join(DIRECTORY_FILE),
                config.directory.clone(),
            )
            .map_err(OpenError::Directory)?;
            Ok(Arc::new(dir))
        }
        Backend::Postgres => open_blocking(open_directory_async(config)),
    }
}

/// [`open_store`] from async code; PostgreSQL's listener runs on the
/// caller's runtime.
pub async fn open_store_async(config: &BackendConfig) -> Result<Arc<dyn Store>, OpenError> {
    match config.backend {
        Backend::Sqlite => open_store(config),
        Backend::Postgres => {
            let store = PgStore::open(config.pg_options())
                .await
                .map_err(OpenError::Store)?;
            Ok(store)
        }
    }
}

/// [`open_directory`] from async code.
pub async fn open_directory_async(config: &BackendConfig) -> Result<Arc<dyn Directory>, OpenError> {
    match config.backend {
        Backend::Sqlite => open_directory(config),
        Backend::Postgres => {
            let dir = PgDirectory::open(&config.pg_options(), config.directory.clone())
                .await
                .map_err(OpenError::Directory)?;
            Ok(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_and_others_are_refused() {
        assert_eq!("sqlite".parse::<Backend>(), Ok(Backend::Sqlite));
        assert_eq!("postgres".parse::<Backend>(), Ok(Backend::Postgres));
        let err = "mysql".parse::<Backend>().unwrap_err();
        assert!(err.starts_with("store.backend: 'mysql'"), "{err}");
        assert_eq!(Backend::default(), Backend::Sqlite);
    }

    #[test]
    fn postgres_outside_a_runtime_is_a_clear_error_and_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = BackendConfig::sqlite(tmp.path(), DirectoryConfig::default());
        config.backend = Backend::Postgres;
        config.url = "postgres://nobody@127.0.0.1:1/none".into();
        let err = open_store(&config).err().unwrap();
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("runtime"), "{err}");
        let err = open_directory(&config).err().unwrap();
        assert!(
            err.to_string().contains("store.backend = \"postgres\""),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn sqlite_opens_both_in_the_data_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let config = BackendConfig::sqlite(tmp.path(), DirectoryConfig::default());
        let store = open_store(&config).unwrap();
        let dir = open_directory(&config).unwrap();
        let account = dir.add_user("u@localhost", None, "pw").await.unwrap();
        store.ensure_account(account.clone()).await.unwrap();
        assert_eq!(store.mailboxes(account).await.unwrap().len(), 6);
        assert!(tmp.path().join("store.db").exists());
        assert!(tmp.path().join(DIRECTORY_FILE).exists());
    }
}

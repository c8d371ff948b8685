//! The fixture every protocol's session test kit starts from: a temporary
//! directory with a real directory (domain example.test, users alice
//! "Alice Liddell" and bob, password "pw", argon2 at its cheapest) and a
//! real store.

use std::sync::Arc;

use directory::{Directory, DirectoryConfig};
use store::{SqliteStore, StoreOptions};

pub(crate) const ALICE: &str = "alice@example.test";
pub(crate) const BOB: &str = "bob@example.test";

pub(crate) struct Fixture {
    /// Keeps the files alive as long as the fixture.
    pub dir: tempfile::TempDir,
    pub directory: Arc<Directory>,
    pub store: Arc<SqliteStore>,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let directory = Directory::open(
        &dir.path().join("directory.db"),
        DirectoryConfig {
            domains: vec!["example.test".into()],
            argon2_m_cost: 64,
            argon2_t_cost: 1,
            ..DirectoryConfig::default()
        },
    )
    .expect("directory");
    directory
        .add_user(ALICE, Some("Alice Liddell"), "pw")
        .expect("alice");
    directory.add_user(BOB, None, "pw").expect("bob");
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
    Fixture {
        dir,
        directory: Arc::new(directory),
        store,
    }
}

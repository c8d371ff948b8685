//! SQLite-specific tests of the SCRAM keys: users of schema 2 get theirs
//! at their next login, the secret is per database, and nothing prints
//! them. The behaviour is in the conformance suite
//! (`conformance/scram.rs`).

use proto_common::{ScramClient, ScramError, ScramKeys, ScramServer};
use rusqlite::Connection;

use crate::testutil::*;
use crate::{DB_FILE_NAME, DirectoryDb};

/// A whole SCRAM-SHA-256 exchange of `password` against `keys`.
fn scram_login(dir: &DirectoryDb, keys: ScramKeys, password: &str) -> Result<(), ScramError> {
    let (client, first) = ScramClient::new("someone", password, None, "clientnonce");
    let need = ScramServer::start(&first)?;
    let (server_first, state) = need.with_keys(keys, &dir.scram_server_nonce().unwrap());
    let (fin, verifier) = client.server_first(&server_first)?;
    let (server_final, _) = state.finish(&fin)?;
    verifier.server_final(&server_final)
}

fn keys_of(dir: &DirectoryDb, login: &str) -> Option<(String, ScramKeys)> {
    dir.scram_keys(login).unwrap()
}

#[test]
fn version_2_users_get_keys_at_their_next_password_login() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(DB_FILE_NAME);
    let hash = crate::password::Hasher::new(8, 1, 1, 1)
        .unwrap()
        .hash("old-pw")
        .unwrap();
    {
        // A directory as schema 2 left it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(crate::schema::V1).unwrap();
        conn.execute_batch(crate::schema::V2).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '2');",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO users (address, full_name, password_hash, local_folded)
             VALUES ('ann@example.org', 'Ann', ?1, 'ann')",
            [&hash],
        )
        .unwrap();
    }
    let dir = DirectoryDb::open(&path, config(&["example.org"])).unwrap();
    let version: String = dir
        .lock()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, crate::SCHEMA_VERSION.to_string());
    // Migrated, the user is still there, without keys until a login.
    assert_eq!(
        dir.user("ann@example.org")
            .unwrap()
            .unwrap()
            .full_name
            .as_deref(),
        Some("Ann")
    );
    assert_eq!(dir.scram_keys("ann").unwrap(), None);
    let account = dir.authenticate("ann", "old-pw").unwrap().unwrap();
    assert!(dir.fill_scram_keys(&account, "old-pw").unwrap());
    let (found, keys) = keys_of(&dir, "ann").unwrap();
    assert_eq!(found, "ann@example.org");
    assert_eq!(scram_login(&dir, keys.clone(), "old-pw"), Ok(()));
    // Once is enough.
    assert!(!dir.fill_scram_keys(&account, "old-pw").unwrap());
    assert_eq!(keys_of(&dir, "ann").unwrap().1, keys);
    // The migration made the fake-salt secret.
    let reopened = DirectoryDb::open(&path, config(&["example.org"])).unwrap();
    assert_eq!(reopened.fake_scram_keys("x"), dir.fake_scram_keys("x"));
}

#[test]
fn keys_do_not_print() {
    let t = open(&["example.org"]);
    let keys = t.dir.fake_scram_keys("x");
    let shown = format!("{keys:?} {:?}", t.dir);
    assert!(
        !shown.contains(&format!("{:?}", keys.stored_key)),
        "{shown}"
    );
}

#[test]
fn each_database_has_its_own_fake_salt_secret() {
    let a = open(&["example.org"]);
    let again =
        DirectoryDb::open(&a.tmp.path().join(DB_FILE_NAME), config(&["example.org"])).unwrap();
    assert_eq!(again.fake_scram_keys("zed"), a.dir.fake_scram_keys("zed"));
    let other = open(&["example.org"]);
    assert_ne!(
        other.dir.fake_scram_keys("zed").salt,
        a.dir.fake_scram_keys("zed").salt
    );
}

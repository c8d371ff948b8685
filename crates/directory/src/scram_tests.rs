//! Tests of the SCRAM keys: written with passwords, looked up like
//! logins, faked for unknown names, filled in for users of schema 2.

use proto_common::{ScramClient, ScramError, ScramKeys, ScramServer};
use rusqlite::Connection;

use crate::testutil::*;
use crate::{DB_FILE_NAME, DirectoryDb, DirectoryError};

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
fn add_user_writes_keys_that_the_password_matches() {
    let t = open(&["example.org"]);
    t.dir.add_user("Bob@example.org", None, "s3cret").unwrap();
    t.dir.add_user("amy@example.org", None, "s3cret").unwrap();
    let (account, keys) = keys_of(&t.dir, "bob").unwrap();
    assert_eq!(account, "bob@example.org");
    assert_eq!(keys.salt.len(), crate::SCRAM_SALT_LEN);
    assert_eq!(keys.iterations.get(), 4096);
    assert_eq!(scram_login(&t.dir, keys.clone(), "s3cret"), Ok(()));
    assert_eq!(
        scram_login(&t.dir, keys.clone(), "s3creT"),
        Err(ScramError::InvalidProof)
    );
    // Each user has a salt of their own, so equal passwords differ.
    let (_, amy) = keys_of(&t.dir, "amy@example.org").unwrap();
    assert_ne!(amy.salt, keys.salt);
    assert_ne!(amy.stored_key, keys.stored_key);
}

#[test]
fn scram_iterations_come_from_the_config_and_have_a_floor() {
    let mut c = config(&["example.org"]);
    c.scram_iterations = 5000;
    let t = open_with(c);
    t.dir.add_user("u@example.org", None, "pw").unwrap();
    assert_eq!(keys_of(&t.dir, "u").unwrap().1.iterations.get(), 5000);
    assert_eq!(t.dir.fake_scram_keys("x").iterations.get(), 5000);

    let mut c = config(&["example.org"]);
    c.scram_iterations = 4095;
    let tmp = tempfile::tempdir().unwrap();
    let err = DirectoryDb::open(&tmp.path().join(DB_FILE_NAME), c).unwrap_err();
    assert!(matches!(err, DirectoryError::Password(_)), "{err}");
    assert!(err.to_string().contains("scram_iterations = 4095"), "{err}");
}

#[test]
fn set_password_replaces_the_keys() {
    let t = open(&["example.org"]);
    t.dir.add_user("u@example.org", None, "old").unwrap();
    let (_, before) = keys_of(&t.dir, "u").unwrap();
    t.dir.set_password("u@example.org", "new").unwrap();
    let (_, after) = keys_of(&t.dir, "u").unwrap();
    assert_ne!(before.salt, after.salt);
    assert_eq!(scram_login(&t.dir, after.clone(), "new"), Ok(()));
    assert_eq!(
        scram_login(&t.dir, after, "old"),
        Err(ScramError::InvalidProof)
    );
    assert!(matches!(
        t.dir.set_password("nobody@example.org", "x"),
        Err(DirectoryError::NotFound(_))
    ));
}

#[test]
fn scram_keys_resolve_logins_like_authenticate() {
    let t = open(&["example.org", "other.test", "third.test"]);
    t.dir.add_user("amy@other.test", None, "pw").unwrap();
    t.dir.add_user("bob@other.test", None, "pw").unwrap();
    t.dir.add_user("bob@third.test", None, "pw").unwrap();
    t.dir.add_user("cat@example.org", None, "pw").unwrap();
    t.dir.add_user("cat@other.test", None, "pw").unwrap();
    t.dir
        .add_alias("al@example.org", &s(&["cat@example.org"]))
        .unwrap();
    let account = |login: &str| keys_of(&t.dir, login).map(|(a, _)| a);
    assert_eq!(account("Amy").as_deref(), Some("amy@other.test"));
    assert_eq!(account("bob"), None);
    assert_eq!(account("cat").as_deref(), Some("cat@example.org"));
    assert_eq!(account("CAT@Other.test").as_deref(), Some("cat@other.test"));
    assert_eq!(account("al@example.org"), None);
    assert_eq!(account("nobody"), None);
    assert_eq!(account(""), None);
}

#[test]
fn unknown_names_get_stable_fake_keys_that_no_password_matches() {
    let t = open(&["example.org"]);
    t.dir.add_user("real@example.org", None, "pw").unwrap();
    let a = t.dir.fake_scram_keys("zed");
    assert_eq!(a, t.dir.fake_scram_keys("zed"));
    // As a login resolves it: the primary domain, case folded.
    assert_eq!(a, t.dir.fake_scram_keys("Zed@EXAMPLE.org"));
    assert_eq!(a, t.dir.fake_scram_keys("ZED"));
    assert_ne!(a.salt, t.dir.fake_scram_keys("zee").salt);
    // Shaped like real keys.
    let (_, real) = keys_of(&t.dir, "real").unwrap();
    assert_eq!(a.salt.len(), real.salt.len());
    assert_eq!(a.iterations, real.iterations);
    for password in ["", "pw", "zed", "password"] {
        assert_eq!(
            scram_login(&t.dir, a.clone(), password),
            Err(ScramError::InvalidProof)
        );
    }
    // The secret lives in the database: the same salt after reopening,
    // another in another database.
    let path = t.tmp.path().join(DB_FILE_NAME);
    let again = DirectoryDb::open(&path, config(&["example.org"])).unwrap();
    assert_eq!(again.fake_scram_keys("zed"), a);
    let other = open(&["example.org"]);
    assert_ne!(other.dir.fake_scram_keys("zed").salt, a.salt);
}

#[test]
fn scram_off_writes_no_keys_and_clears_them_on_passwd() {
    let t = open(&["example.org"]);
    t.dir.add_user("kept@example.org", None, "pw").unwrap();
    let path = t.tmp.path().join(DB_FILE_NAME);
    let mut c = config(&["example.org"]);
    c.scram = false;
    let off = DirectoryDb::open(&path, c).unwrap();
    assert!(!off.scram_enabled() && t.dir.scram_enabled());
    off.add_user("new@example.org", None, "pw").unwrap();
    assert_eq!(off.scram_keys("kept").unwrap(), None);
    assert!(!off.fill_scram_keys("new@example.org", "pw").unwrap());
    // Seen with SCRAM on: the user added while off has none.
    assert!(keys_of(&t.dir, "new").is_none());
    assert!(keys_of(&t.dir, "kept").is_some());
    // A password changed while off leaves no keys of the old password.
    off.set_password("kept@example.org", "pw2").unwrap();
    assert!(keys_of(&t.dir, "kept").is_none());
    assert_eq!(
        t.dir.authenticate("kept", "pw2").unwrap().as_deref(),
        Some("kept@example.org")
    );
}

#[test]
fn fill_scram_keys_only_where_missing() {
    let t = open(&["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").unwrap();
    let (_, before) = keys_of(&t.dir, "u").unwrap();
    assert!(!t.dir.fill_scram_keys("u@example.org", "pw").unwrap());
    assert_eq!(keys_of(&t.dir, "u").unwrap().1, before);
    assert!(!t.dir.fill_scram_keys("nobody@example.org", "pw").unwrap());
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
    assert_eq!(crate::SCHEMA_VERSION, 3);
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
fn server_nonces_differ() {
    let t = open(&["example.org"]);
    let a = t.dir.scram_server_nonce().unwrap();
    let b = t.dir.scram_server_nonce().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 24);
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

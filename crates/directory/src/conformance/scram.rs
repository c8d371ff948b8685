//! Conformance: SCRAM-SHA-256 keys (RFC 5802 3, RFC 7677): written with
//! passwords, looked up like logins, faked for unknown names, filled in
//! where missing, cleared when SCRAM is off.

use proto_common::{ScramClient, ScramError, ScramKeys, ScramServer};

use crate::conformance::{Backend, config, open, open_with, s};
use crate::{Directory, DirectoryError};

/// A whole SCRAM-SHA-256 exchange of `password` against `keys`.
pub fn scram_login(dir: &dyn Directory, keys: ScramKeys, password: &str) -> Result<(), ScramError> {
    let (client, first) = ScramClient::new("someone", password, None, "clientnonce");
    let need = ScramServer::start(&first)?;
    let (server_first, state) = need.with_keys(keys, &dir.scram_server_nonce().expect("nonce"));
    let (fin, verifier) = client.server_first(&server_first)?;
    let (server_final, _) = state.finish(&fin)?;
    verifier.server_final(&server_final)
}

async fn keys_of(dir: &dyn Directory, login: &str) -> Option<(String, ScramKeys)> {
    dir.scram_keys(login).await.expect("lookup")
}

pub async fn add_user_writes_keys_that_the_password_matches(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("Bob@example.org", None, "s3cret")
        .await
        .unwrap();
    t.dir
        .add_user("amy@example.org", None, "s3cret")
        .await
        .unwrap();
    let (account, keys) = keys_of(&*t.dir, "bob").await.unwrap();
    assert_eq!(account, "bob@example.org");
    assert_eq!(keys.salt.len(), crate::SCRAM_SALT_LEN);
    assert_eq!(keys.iterations.get(), 4096);
    assert_eq!(scram_login(&*t.dir, keys.clone(), "s3cret"), Ok(()));
    assert_eq!(
        scram_login(&*t.dir, keys.clone(), "s3creT"),
        Err(ScramError::InvalidProof)
    );
    // Each user has a salt of their own, so equal passwords differ.
    let (_, amy) = keys_of(&*t.dir, "amy@example.org").await.unwrap();
    assert_ne!(amy.salt, keys.salt);
    assert_ne!(amy.stored_key, keys.stored_key);
}

pub async fn scram_iterations_come_from_the_config_and_have_a_floor(backend: &dyn Backend) {
    let mut c = config(&["example.org"]);
    c.scram_iterations = 5000;
    let t = open_with(backend, c);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    assert_eq!(
        keys_of(&*t.dir, "u").await.unwrap().1.iterations.get(),
        5000
    );
    assert_eq!(t.dir.fake_scram_keys("x").iterations.get(), 5000);

    let mut c = config(&["example.org"]);
    c.scram_iterations = 4095;
    let err = backend.open(c).err().expect("refused");
    assert!(matches!(err, DirectoryError::Password(_)), "{err}");
    assert!(err.to_string().contains("scram_iterations = 4095"), "{err}");
}

pub async fn set_password_replaces_the_keys(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "old").await.unwrap();
    let (_, before) = keys_of(&*t.dir, "u").await.unwrap();
    t.dir.set_password("u@example.org", "new").await.unwrap();
    let (_, after) = keys_of(&*t.dir, "u").await.unwrap();
    assert_ne!(before.salt, after.salt);
    assert_eq!(scram_login(&*t.dir, after.clone(), "new"), Ok(()));
    assert_eq!(
        scram_login(&*t.dir, after, "old"),
        Err(ScramError::InvalidProof)
    );
    assert!(matches!(
        t.dir.set_password("nobody@example.org", "x").await,
        Err(DirectoryError::NotFound(_))
    ));
}

pub async fn scram_keys_resolve_logins_like_authenticate(backend: &dyn Backend) {
    let t = open(backend, &["example.org", "other.test", "third.test"]);
    t.dir.add_user("amy@other.test", None, "pw").await.unwrap();
    t.dir.add_user("bob@other.test", None, "pw").await.unwrap();
    t.dir.add_user("bob@third.test", None, "pw").await.unwrap();
    t.dir.add_user("cat@example.org", None, "pw").await.unwrap();
    t.dir.add_user("cat@other.test", None, "pw").await.unwrap();
    t.dir
        .add_alias("al@example.org", &s(&["cat@example.org"]))
        .await
        .unwrap();
    for (login, want) in [
        ("Amy", Some("amy@other.test")),
        ("bob", None),
        ("cat", Some("cat@example.org")),
        ("CAT@Other.test", Some("cat@other.test")),
        ("al@example.org", None),
        ("nobody", None),
        ("", None),
    ] {
        let account = keys_of(&*t.dir, login).await.map(|(a, _)| a);
        assert_eq!(account.as_deref(), want, "{login}");
    }
}

pub async fn unknown_names_get_stable_fake_keys_that_no_password_matches(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("real@example.org", None, "pw")
        .await
        .unwrap();
    let a = t.dir.fake_scram_keys("zed");
    assert_eq!(a, t.dir.fake_scram_keys("zed"));
    // As a login resolves it: the primary domain, case folded.
    assert_eq!(a, t.dir.fake_scram_keys("Zed@EXAMPLE.org"));
    assert_eq!(a, t.dir.fake_scram_keys("ZED"));
    assert_ne!(a.salt, t.dir.fake_scram_keys("zee").salt);
    // Shaped like real keys.
    let (_, real) = keys_of(&*t.dir, "real").await.unwrap();
    assert_eq!(a.salt.len(), real.salt.len());
    assert_eq!(a.iterations, real.iterations);
    for password in ["", "pw", "zed", "password"] {
        assert_eq!(
            scram_login(&*t.dir, a.clone(), password),
            Err(ScramError::InvalidProof)
        );
    }
    // The secret lives in the database: the same salt in another handle.
    let again = backend.open(config(&["example.org"])).unwrap();
    assert_eq!(again.fake_scram_keys("zed"), a);
}

pub async fn scram_off_writes_no_keys_and_clears_them_on_passwd(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("kept@example.org", None, "pw")
        .await
        .unwrap();
    let mut c = config(&["example.org"]);
    c.scram = false;
    let off = backend.open(c).unwrap();
    assert!(!off.scram_enabled() && t.dir.scram_enabled());
    off.add_user("new@example.org", None, "pw").await.unwrap();
    assert_eq!(off.scram_keys("kept").await.unwrap(), None);
    assert!(!off.fill_scram_keys("new@example.org", "pw").await.unwrap());
    // Seen with SCRAM on: the user added while off has none.
    assert!(keys_of(&*t.dir, "new").await.is_none());
    assert!(keys_of(&*t.dir, "kept").await.is_some());
    // A password changed while off leaves no keys of the old password.
    off.set_password("kept@example.org", "pw2").await.unwrap();
    assert!(keys_of(&*t.dir, "kept").await.is_none());
    assert_eq!(
        t.dir.authenticate("kept", "pw2").await.unwrap().as_deref(),
        Some("kept@example.org")
    );
}

pub async fn fill_scram_keys_only_where_missing(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    let (_, before) = keys_of(&*t.dir, "u").await.unwrap();
    assert!(!t.dir.fill_scram_keys("u@example.org", "pw").await.unwrap());
    assert_eq!(keys_of(&*t.dir, "u").await.unwrap().1, before);
    assert!(
        !t.dir
            .fill_scram_keys("nobody@example.org", "pw")
            .await
            .unwrap()
    );
}

pub async fn server_nonces_differ(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    let a = t.dir.scram_server_nonce().unwrap();
    let b = t.dir.scram_server_nonce().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 24);
}

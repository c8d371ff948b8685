//! Conformance: VRFY and EXPN (RFC 5321 3.5), login names and password
//! checks (SPEC 5, 7).

use crate::User;
use crate::conformance::{Backend, open, s};

fn user(a: &str, n: Option<&str>) -> User {
    User {
        address: a.into(),
        full_name: n.map(Into::into),
    }
}

pub async fn vrfy_folds_unicode_case_in_names_and_local_parts(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("Ölaf@example.org", Some("ÅSA Öberg"), "pw")
        .await
        .unwrap();
    assert_eq!(t.dir.vrfy("åsa öberg").await.unwrap().len(), 1);
    assert_eq!(t.dir.vrfy("ÖLAF").await.unwrap().len(), 1);
    assert_eq!(t.dir.vrfy("<ölaf@EXAMPLE.org>").await.unwrap().len(), 1);
    assert!(t.dir.vrfy("olaf").await.unwrap().is_empty());
    // Case folding, not lower case alone: ß and SS, σ and final ς.
    t.dir
        .add_user("hg@example.org", Some("Hans Groß"), "pw")
        .await
        .unwrap();
    t.dir
        .add_user("odos@example.org", Some("Οδός"), "pw")
        .await
        .unwrap();
    assert_eq!(t.dir.vrfy("HANS GROSS").await.unwrap().len(), 1);
    assert_eq!(t.dir.vrfy("οδόσ").await.unwrap().len(), 1);
}

pub async fn vrfy_by_full_name_and_local_part(backend: &dyn Backend) {
    let t = open(backend, &["example.org", "other.test"]);
    t.dir
        .add_user("fred@example.org", Some("Fred Smith"), "pw")
        .await
        .unwrap();
    t.dir
        .add_user("jo@other.test", Some("Jo Bloggs"), "pw")
        .await
        .unwrap();
    let fred = vec![user("fred@example.org", Some("Fred Smith"))];
    assert_eq!(t.dir.vrfy("fred smith").await.unwrap(), fred);
    assert_eq!(t.dir.vrfy("FRED").await.unwrap(), fred);
    assert_eq!(t.dir.vrfy("<Fred@Example.org>").await.unwrap(), fred);
    assert_eq!(t.dir.vrfy("fred@example.org").await.unwrap(), fred);
    assert_eq!(
        t.dir.vrfy("jo").await.unwrap(),
        vec![user("jo@other.test", Some("Jo Bloggs"))]
    );
    assert!(t.dir.vrfy("fred@other.test").await.unwrap().is_empty());
    assert!(t.dir.vrfy("nobody").await.unwrap().is_empty());
    assert!(t.dir.vrfy("").await.unwrap().is_empty());
}

pub async fn vrfy_ambiguous_returns_all(backend: &dyn Backend) {
    let t = open(backend, &["example.org", "other.test"]);
    t.dir
        .add_user("smith@example.org", Some("John Smith"), "pw")
        .await
        .unwrap();
    t.dir
        .add_user("smith@other.test", None, "pw")
        .await
        .unwrap();
    t.dir
        .add_user("js@example.org", Some("smith"), "pw")
        .await
        .unwrap();
    let got: Vec<String> = t
        .dir
        .vrfy("Smith")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.address)
        .collect();
    assert_eq!(
        got,
        s(&["js@example.org", "smith@example.org", "smith@other.test"])
    );
}

pub async fn expn_only_for_lists_with_full_names(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("fred@example.org", Some("Fred Smith"), "pw")
        .await
        .unwrap();
    t.dir
        .add_list("l@example.org", &s(&["fred@example.org", "x@remote.test"]))
        .await
        .unwrap();
    t.dir
        .add_alias("a@example.org", &s(&["fred@example.org"]))
        .await
        .unwrap();
    let members = t.dir.expn("L@example.org").await.unwrap().unwrap();
    assert_eq!(members[0].full_name.as_deref(), Some("Fred Smith"));
    assert_eq!(members[1].address, "x@remote.test");
    assert_eq!(members[1].full_name, None);
    assert_eq!(t.dir.expn("a@example.org").await.unwrap(), None);
    assert_eq!(t.dir.expn("fred@example.org").await.unwrap(), None);
}

pub async fn find_login_bare_local_part_rules(backend: &dyn Backend) {
    let t = open(backend, &["example.org", "other.test", "third.test"]);
    t.dir.add_user("amy@other.test", None, "pw").await.unwrap();
    t.dir.add_user("bob@other.test", None, "pw").await.unwrap();
    t.dir.add_user("bob@third.test", None, "pw").await.unwrap();
    t.dir.add_user("cat@example.org", None, "pw").await.unwrap();
    t.dir.add_user("cat@other.test", None, "pw").await.unwrap();
    // Unique in a secondary domain.
    assert_eq!(
        t.dir.find_login("Amy").await.unwrap().as_deref(),
        Some("amy@other.test")
    );
    // Ambiguous without the primary domain.
    assert_eq!(t.dir.find_login("bob").await.unwrap(), None);
    // The primary domain first.
    assert_eq!(
        t.dir.find_login("cat").await.unwrap().as_deref(),
        Some("cat@example.org")
    );
    // A full address is taken as is.
    assert_eq!(
        t.dir.find_login("Bob@Third.test").await.unwrap().as_deref(),
        Some("bob@third.test")
    );
    assert_eq!(t.dir.find_login("nobody").await.unwrap(), None);
    assert_eq!(t.dir.find_login("a b@@").await.unwrap(), None);
}

pub async fn authenticate_wrong_password_is_none(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("u@example.org", None, "right")
        .await
        .unwrap();
    assert_eq!(t.dir.authenticate("u", "wrong").await.unwrap(), None);
    assert_eq!(t.dir.authenticate("u@example.org", "").await.unwrap(), None);
    assert_eq!(t.dir.authenticate("nobody", "right").await.unwrap(), None);
    assert_eq!(
        t.dir
            .authenticate("U@example.org", "right")
            .await
            .unwrap()
            .as_deref(),
        Some("u@example.org")
    );
    t.dir.set_password("u@example.org", "new").await.unwrap();
    assert_eq!(t.dir.authenticate("u", "right").await.unwrap(), None);
    assert_eq!(
        t.dir.authenticate("u", "new").await.unwrap().as_deref(),
        Some("u@example.org")
    );
}

pub async fn alias_cannot_log_in(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .add_alias("a@example.org", &s(&["u@example.org"]))
        .await
        .unwrap();
    t.dir
        .add_list("l@example.org", &s(&["u@example.org"]))
        .await
        .unwrap();
    assert_eq!(t.dir.find_login("a@example.org").await.unwrap(), None);
    assert_eq!(t.dir.find_login("l").await.unwrap(), None);
    assert_eq!(
        t.dir.authenticate("a@example.org", "pw").await.unwrap(),
        None
    );
    // Nor the implicit postmaster.
    assert_eq!(t.dir.find_login("postmaster").await.unwrap(), None);
}

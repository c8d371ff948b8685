//! Conformance: the admin operations of the CLI (SPEC 4, 7): users,
//! aliases, lists and forwards.

use crate::conformance::{Backend, deliver, open, s};
use crate::{DirectoryError, Forward, User, UserQuota};

pub async fn add_user_in_unknown_domain_fails(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    let err = t
        .dir
        .add_user("bob@example.net", None, "pw")
        .await
        .unwrap_err();
    assert!(matches!(&err, DirectoryError::UnknownDomain(d) if d == "example.net"));
    assert_eq!(
        err.to_string(),
        "domain example.net is not one of the configured domains"
    );
}

pub async fn add_user_returns_canonical_and_refuses_duplicates(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    let a = t
        .dir
        .add_user("Bob@Example.ORG", Some("Bob Smith"), "pw")
        .await
        .unwrap();
    assert_eq!(a, "bob@example.org");
    assert!(matches!(
        t.dir.add_user("BOB@example.org", None, "pw").await,
        Err(DirectoryError::AlreadyExists(_))
    ));
    assert_eq!(
        t.dir.list_users().await.unwrap(),
        vec![User {
            address: "bob@example.org".into(),
            full_name: Some("Bob Smith".into())
        }]
    );
}

pub async fn quota_defaults_to_none_and_is_set_per_user(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("bob@example.org", None, "pw").await.unwrap();
    assert_eq!(
        t.dir.quota("Bob@example.org").await.unwrap(),
        Some(UserQuota::default())
    );
    let q = UserQuota {
        storage: Some(10 << 20),
        messages: None,
    };
    t.dir.set_quota("bob@example.org", q).await.unwrap();
    assert_eq!(t.dir.quota("bob@example.org").await.unwrap(), Some(q));
    assert_eq!(
        t.dir.quotas().await.unwrap(),
        vec![("bob@example.org".to_string(), q)]
    );
    assert_eq!(t.dir.quota("nobody@example.org").await.unwrap(), None);
    assert!(matches!(
        t.dir.set_quota("nobody@example.org", q).await,
        Err(DirectoryError::NotFound(_))
    ));
}

pub async fn user_lookup_is_case_insensitive(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("alice@example.org", None, "pw")
        .await
        .unwrap();
    let u = t.dir.user("ALICE@Example.Org").await.unwrap().unwrap();
    assert_eq!(u.address, "alice@example.org");
    assert_eq!(
        t.dir.resolve("Alice@EXAMPLE.org").await.unwrap(),
        deliver(&["alice@example.org"], &[])
    );
}

pub async fn user_alias_and_list_exclude_each_other(backend: &dyn Backend) {
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
    let exists = |r| matches!(r, Err(DirectoryError::AlreadyExists(_)));
    assert!(exists(
        t.dir
            .add_user("a@example.org", None, "pw")
            .await
            .map(|_| ())
    ));
    assert!(exists(
        t.dir
            .add_user("l@example.org", None, "pw")
            .await
            .map(|_| ())
    ));
    assert!(exists(
        t.dir
            .add_alias("u@example.org", &s(&["x@y.test"]))
            .await
            .map(|_| ())
    ));
    assert!(exists(
        t.dir
            .add_alias("l@example.org", &s(&["x@y.test"]))
            .await
            .map(|_| ())
    ));
    assert!(exists(
        t.dir
            .add_list("a@example.org", &s(&["x@y.test"]))
            .await
            .map(|_| ())
    ));
}

pub async fn alias_add_on_existing_adds_targets(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_alias("team@example.org", &s(&["a@example.org", "b@remote.test"]))
        .await
        .unwrap();
    t.dir
        .add_alias(
            "team@example.org",
            &s(&["B@Remote.test", "A@example.org", "c@example.org"]),
        )
        .await
        .unwrap();
    assert_eq!(
        t.dir.aliases().await.unwrap(),
        vec![(
            "team@example.org".to_string(),
            s(&[
                "a@example.org",
                "b@remote.test",
                "B@remote.test",
                "c@example.org"
            ])
        )]
    );
}

pub async fn del_alias_removes_targets_then_whole(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_alias("team@example.org", &s(&["a@example.org", "b@example.org"]))
        .await
        .unwrap();
    t.dir
        .del_alias("team@example.org", &s(&["A@example.org"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.aliases().await.unwrap(),
        vec![("team@example.org".to_string(), s(&["b@example.org"]))]
    );
    assert!(matches!(
        t.dir
            .del_alias("team@example.org", &s(&["zz@example.org"]))
            .await,
        Err(DirectoryError::NotFound(_))
    ));
    t.dir.del_alias("team@example.org", &[]).await.unwrap();
    assert!(t.dir.aliases().await.unwrap().is_empty());
    assert!(matches!(
        t.dir.del_alias("team@example.org", &[]).await,
        Err(DirectoryError::NotFound(_))
    ));
}

pub async fn list_members_in_insertion_order(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_list("l@example.org", &s(&["zed@example.org", "amy@example.org"]))
        .await
        .unwrap();
    t.dir
        .add_list("l@example.org", &s(&["mid@remote.test"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.lists().await.unwrap(),
        vec![(
            "l@example.org".to_string(),
            s(&["zed@example.org", "amy@example.org", "mid@remote.test"])
        )]
    );
    let members: Vec<String> = t
        .dir
        .expn("l@example.org")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|m| m.address)
        .collect();
    assert_eq!(
        members,
        s(&["zed@example.org", "amy@example.org", "mid@remote.test"])
    );
}

pub async fn forward_needs_an_existing_user_and_goes_with_it(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    assert!(matches!(
        t.dir
            .set_forward("nobody@example.org", "x@remote.test", false, false)
            .await,
        Err(DirectoryError::NotFound(_))
    ));
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "X@Remote.test", true, false)
        .await
        .unwrap();
    assert_eq!(
        t.dir.forward("U@example.org").await.unwrap(),
        Some(Forward {
            target: "X@remote.test".into(),
            keep: true,
            refuse: false
        })
    );
    t.dir.delete_user("u@example.org").await.unwrap();
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    assert_eq!(t.dir.forward("u@example.org").await.unwrap(), None);
    assert!(matches!(
        t.dir.del_forward("u@example.org").await,
        Err(DirectoryError::NotFound(_))
    ));
}

pub async fn full_name_with_line_break_is_refused(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    assert!(
        t.dir
            .add_user("u@example.org", Some("Evil\r\n250 ok"), "pw")
            .await
            .is_err()
    );
}

pub async fn alias_cycle_is_refused_at_add_and_nothing_is_stored(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .add_alias("a1@example.org", &s(&["a2@example.org"]))
        .await
        .unwrap();
    let err = t
        .dir
        .add_alias("a2@example.org", &s(&["u@example.org", "a1@example.org"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("a2@example.org -> a1@example.org -> a2@example.org"),
        "{text}"
    );
    assert_eq!(
        t.dir.aliases().await.unwrap().len(),
        1,
        "the refused alias is not stored"
    );
    // Through a list and a +detail address too; and onto itself.
    t.dir
        .add_list("l@example.org", &s(&["a1@example.org"]))
        .await
        .unwrap();
    assert!(
        t.dir
            .add_alias("a2@example.org", &s(&["l+x@example.org"]))
            .await
            .is_err()
    );
    assert!(
        t.dir
            .add_alias("self@example.org", &s(&["self@example.org"]))
            .await
            .is_err()
    );
}

pub async fn dangling_local_target_is_a_warning_not_an_error(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    let w = t
        .dir
        .add_alias(
            "a@example.org",
            &s(&["u@example.org", "ghost@example.org", "x@remote.test"]),
        )
        .await
        .unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("ghost@example.org does not exist"),
        "{w:?}"
    );
}

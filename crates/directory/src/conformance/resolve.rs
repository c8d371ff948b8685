//! Conformance: RCPT resolution (RFC 5321 3.3, 3.4, 4.5.1): aliases,
//! lists, forwards (251/551), `+detail`, postmaster and catch-all, with
//! cycles and bounds.

use crate::conformance::{Backend, config, deliver, open, open_with, s};
use crate::{MAX_EXPANSION_DEPTH, Resolution};

pub async fn unknown_and_not_local(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    assert_eq!(
        t.dir.resolve("nobody@example.org").await.unwrap(),
        Resolution::Unknown
    );
    assert_eq!(
        t.dir.resolve("x@remote.test").await.unwrap(),
        Resolution::NotLocal
    );
    assert!(t.dir.resolve("bare").await.is_err());
}

pub async fn plus_detail_delivers_to_base_user(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir
        .add_user("alice@example.org", None, "pw")
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("Alice+News@example.org").await.unwrap(),
        deliver(&["alice@example.org"], &[])
    );
    // An exact entry with the detail wins.
    t.dir
        .add_alias("alice+lists@example.org", &s(&["archive@remote.test"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("alice+lists@example.org").await.unwrap(),
        deliver(&[], &["archive@remote.test"])
    );
    assert_eq!(
        t.dir.resolve("bob+x@example.org").await.unwrap(),
        Resolution::Unknown
    );
}

pub async fn alias_expands_to_targets(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("a@example.org", None, "pw").await.unwrap();
    t.dir.add_user("b@example.org", None, "pw").await.unwrap();
    t.dir
        .add_alias(
            "team@example.org",
            &s(&[
                "a@example.org",
                "Ext@Remote.test",
                "b@example.org",
                "gone@example.org",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("TEAM@example.org").await.unwrap(),
        deliver(&["a@example.org", "b@example.org"], &["Ext@remote.test"])
    );
}

pub async fn user_reached_directly_and_via_list_gets_one_copy(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir.add_user("v@example.org", None, "pw").await.unwrap();
    t.dir
        .add_alias("a@example.org", &s(&["u@example.org", "v@example.org"]))
        .await
        .unwrap();
    t.dir
        .add_list(
            "l@example.org",
            &s(&["u@example.org", "a@example.org", "U@example.org"]),
        )
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("l@example.org").await.unwrap(),
        deliver(&["u@example.org", "v@example.org"], &[])
    );
}

pub async fn deep_nesting_is_cut_at_the_bound(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    let depth = MAX_EXPANSION_DEPTH + 2;
    for i in 0..depth {
        t.dir
            .add_alias(
                &format!("n{i}@example.org"),
                &s(&[&format!("n{}@example.org", i + 1)]),
            )
            .await
            .unwrap();
    }
    t.dir
        .add_alias(&format!("n{depth}@example.org"), &s(&["u@example.org"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("n0@example.org").await.unwrap(),
        Resolution::Unknown
    );
    assert_eq!(
        t.dir
            .resolve(&format!("n{}@example.org", depth - 4))
            .await
            .unwrap(),
        deliver(&["u@example.org"], &[])
    );
}

pub async fn postmaster_exists_in_every_domain(backend: &dyn Backend) {
    let t = open(backend, &["example.org", "other.test", "third.test"]);
    // Nothing configured: the implicit account in the primary domain.
    for d in ["example.org", "other.test", "third.test"] {
        assert_eq!(
            t.dir.resolve(&format!("PostMaster@{d}")).await.unwrap(),
            deliver(&["postmaster@example.org"], &[])
        );
    }
    // An explicit entry in the primary domain serves every domain...
    t.dir
        .add_alias("postmaster@example.org", &s(&["admin@remote.test"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("postmaster@other.test").await.unwrap(),
        deliver(&[], &["admin@remote.test"])
    );
    // ...and one in a domain wins there.
    t.dir
        .add_user("postmaster@third.test", None, "pw")
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("postmaster@third.test").await.unwrap(),
        deliver(&["postmaster@third.test"], &[])
    );
}

pub async fn catch_all_takes_unknown_addresses(backend: &dyn Backend) {
    let mut c = config(&["example.org", "other.test"]);
    c.catch_all
        .insert("Example.org".to_string(), "Box@example.org".to_string());
    let t = open_with(backend, c);
    t.dir.add_user("box@example.org", None, "pw").await.unwrap();
    t.dir
        .add_user("known@example.org", None, "pw")
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("whatever@example.org").await.unwrap(),
        deliver(&["box@example.org"], &[])
    );
    assert_eq!(
        t.dir.resolve("known@example.org").await.unwrap(),
        deliver(&["known@example.org"], &[])
    );
    assert_eq!(
        t.dir.resolve("whatever@other.test").await.unwrap(),
        Resolution::Unknown
    );
}

pub async fn forward_gives_251_target(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "New@Remote.test", false, false)
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("u@example.org").await.unwrap(),
        Resolution::Forward {
            to: "New@remote.test".into(),
            local: vec![],
            remote: s(&["New@remote.test"]),
        }
    );
    // A local target is delivered locally.
    t.dir.add_user("v@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "v@example.org", false, false)
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("u@example.org").await.unwrap(),
        Resolution::Forward {
            to: "v@example.org".into(),
            local: s(&["v@example.org"]),
            remote: vec![],
        }
    );
}

pub async fn forward_keep_includes_user(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "new@remote.test", true, false)
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("u@example.org").await.unwrap(),
        Resolution::Forward {
            to: "new@remote.test".into(),
            local: s(&["u@example.org"]),
            remote: s(&["new@remote.test"]),
        }
    );
}

pub async fn forward_refuse_gives_551(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "new@remote.test", true, true)
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("u@example.org").await.unwrap(),
        Resolution::Refuse {
            to: "new@remote.test".into()
        }
    );
}

pub async fn forwarded_user_inside_a_list_contributes_its_target(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    t.dir.add_user("u@example.org", None, "pw").await.unwrap();
    t.dir.add_user("w@example.org", None, "pw").await.unwrap();
    t.dir
        .set_forward("u@example.org", "new@remote.test", true, false)
        .await
        .unwrap();
    t.dir
        .add_list("l@example.org", &s(&["u@example.org", "w@example.org"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("l@example.org").await.unwrap(),
        deliver(&["u@example.org", "w@example.org"], &["new@remote.test"])
    );
}

pub async fn remote_local_part_keeps_case(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    assert_eq!(
        t.dir.canonical("Fred.Smith@REMOTE.test").unwrap(),
        "Fred.Smith@remote.test"
    );
    t.dir
        .add_alias("fred@example.org", &s(&["Fred.Smith@REMOTE.test"]))
        .await
        .unwrap();
    assert_eq!(
        t.dir.resolve("fred@example.org").await.unwrap(),
        deliver(&[], &["Fred.Smith@remote.test"])
    );
}

/// RCPT's answers may be cached (issue 18), but never past a change: a
/// user or alias added or removed through this handle or another one (the
/// CLI's) is seen by the very next resolution, however often the address
/// was resolved before.
pub async fn resolve_sees_every_change_at_once(backend: &dyn Backend) {
    let server = open(backend, &["example.org"]);
    let cli = open(backend, &["example.org"]);
    let unknown = || async {
        for _ in 0..3 {
            assert_eq!(
                server.dir.resolve("carol@example.org").await.unwrap(),
                Resolution::Unknown
            );
        }
    };
    unknown().await;
    cli.dir
        .add_user("carol@example.org", None, "pw")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            server.dir.resolve("carol@example.org").await.unwrap(),
            deliver(&["carol@example.org"], &[])
        );
    }
    cli.dir.delete_user("carol@example.org").await.unwrap();
    unknown().await;
    // A change through the same handle, and an alias.
    server
        .dir
        .add_alias("carol@example.org", &s(&["far@remote.test"]))
        .await
        .unwrap();
    assert_eq!(
        server.dir.resolve("carol@example.org").await.unwrap(),
        deliver(&[], &["far@remote.test"])
    );
    cli.dir
        .add_alias("carol@example.org", &s(&["near@remote.test"]))
        .await
        .unwrap();
    assert_eq!(
        server.dir.resolve("carol@example.org").await.unwrap(),
        deliver(&[], &["far@remote.test", "near@remote.test"])
    );
    server
        .dir
        .del_alias("carol@example.org", &[])
        .await
        .unwrap();
    unknown().await;
}

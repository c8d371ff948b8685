//! Conformance: opening (the domains and catch-alls of the config) and a
//! second handle on the same data.

use crate::conformance::{Backend, config, deliver, open};
use crate::{DirectoryError, Resolution};

pub async fn domains_are_lowercased_and_first_is_primary(backend: &dyn Backend) {
    let t = open(backend, &["Example.ORG", "other.test"]);
    assert_eq!(t.dir.domains(), &["example.org", "other.test"]);
    assert_eq!(t.dir.primary_domain(), "example.org");
    assert!(t.dir.is_local_domain("EXAMPLE.org"));
    assert!(!t.dir.is_local_domain("example.net"));
}

pub async fn empty_domain_list_is_refused(backend: &dyn Backend) {
    let err = backend.open(config(&[])).err().expect("refused");
    assert_eq!(err.to_string(), "no domains are configured");
}

pub async fn catch_all_in_foreign_domain_is_refused(backend: &dyn Backend) {
    let mut c = config(&["example.org"]);
    c.catch_all
        .insert("other.test".to_string(), "a@example.org".to_string());
    let err = backend.open(c).err().expect("refused");
    assert!(matches!(err, DirectoryError::UnknownDomain(d) if d == "other.test"));
}

pub async fn second_connection_sees_changes(backend: &dyn Backend) {
    let t = open(backend, &["example.org"]);
    let other = backend.open(config(&["example.org"])).unwrap();
    assert_eq!(
        other.resolve("bob@example.org").await.unwrap(),
        Resolution::Unknown
    );
    t.dir.add_user("bob@example.org", None, "pw").await.unwrap();
    assert_eq!(
        other.resolve("bob@example.org").await.unwrap(),
        deliver(&["bob@example.org"], &[])
    );
    other.delete_user("bob@example.org").await.unwrap();
    assert_eq!(t.dir.user("bob@example.org").await.unwrap(), None);
}

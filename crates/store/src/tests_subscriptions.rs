//! Tests of the subscription list (RFC 9051 6.3.7, 6.3.8): apart from the
//! mailboxes, and carried over from the version-1 schema by its migration.

use rusqlite::Connection;

use crate::schema::DB_FILE;
use crate::tests::{open, tempdir};
use crate::*;

#[tokio::test]
async fn subscriptions_are_apart_from_mailboxes() {
    let dir = tempdir();
    let store = open(dir.path());
    let a = || "a@x".to_string();
    store.ensure_account(a()).await.expect("account");
    // A new account's own mailboxes start subscribed.
    let subs = store.subscriptions(a()).await.expect("subs");
    assert!(subs.contains(&"INBOX".to_string()) && subs.contains(&"Sent".to_string()));
    // RFC 9051 6.3.4: CREATE does not subscribe.
    store
        .create_mailbox(a(), "Work".into(), None)
        .await
        .expect("create");
    let work = store.mailbox(a(), "Work".into()).await.expect("read");
    assert!(!work.expect("work").subscribed);
    // 6.3.7: a name may be subscribed before it exists, and DELETE keeps
    // the subscription.
    store
        .set_subscribed(a(), "Later".into(), true)
        .await
        .expect("sub later");
    store
        .set_subscribed(a(), "Work".into(), true)
        .await
        .expect("sub work");
    store
        .delete_mailbox(a(), "Work".into())
        .await
        .expect("delete");
    let subs = store.subscriptions(a()).await.expect("subs");
    assert!(subs.contains(&"Work".to_string()), "{subs:?}");
    assert!(subs.contains(&"Later".to_string()), "{subs:?}");
    // A re-created mailbox of that name is subscribed again at once.
    store
        .create_mailbox(a(), "Work/Sub".into(), None)
        .await
        .expect("create sub");
    store
        .set_subscribed(a(), "Work/Sub".into(), true)
        .await
        .expect("sub");
    store
        .create_mailbox(a(), "Work".into(), None)
        .await
        .expect("recreate");
    assert!(
        store
            .mailbox(a(), "Work".into())
            .await
            .expect("r")
            .expect("w")
            .subscribed
    );
    // RENAME carries the subscriptions of the mailbox and its inferiors.
    store
        .rename_mailbox(a(), "Work".into(), "Job".into())
        .await
        .expect("rename");
    let subs = store.subscriptions(a()).await.expect("subs");
    assert!(subs.contains(&"Job".to_string()) && subs.contains(&"Job/Sub".to_string()));
    assert!(!subs.iter().any(|s| s.starts_with("Work")), "{subs:?}");
    // Unsubscribing is idempotent; the account's deletion removes them.
    for _ in 0..2 {
        store
            .set_subscribed(a(), "Later".into(), false)
            .await
            .expect("unsub");
    }
    store.delete_account(a()).await.expect("delete account");
    store.ensure_account(a()).await.expect("account again");
    let subs = store.subscriptions(a()).await.expect("subs");
    assert!(!subs.contains(&"Job".to_string()), "{subs:?}");
}

#[tokio::test]
async fn version_one_subscriptions_survive_the_migration() {
    let dir = tempdir();
    {
        let store = open(dir.path());
        store.ensure_account("a@x".into()).await.expect("account");
        store.shutdown();
    }
    // Back to a version-1 database: no subscriptions (nor later) table, the flag in
    // the mailboxes table (Junk unsubscribed there).
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
        conn.execute_batch(
            "DROP INDEX entries_modseq; DROP INDEX expunged_modseq; DROP TABLE imports; \
             DROP TABLE subscriptions; UPDATE mailboxes SET subscribed = 0 WHERE name = 'Junk'; \
             ALTER TABLE queue DROP COLUMN envid; ALTER TABLE queue DROP COLUMN ret; \
             ALTER TABLE queue DROP COLUMN notify; ALTER TABLE queue DROP COLUMN orcpt; \
             ALTER TABLE queue DROP COLUMN smtputf8; ALTER TABLE queue DROP COLUMN warned; \
             ALTER TABLE queue DROP COLUMN notice; \
             DROP INDEX expunged_by_time; ALTER TABLE expunged DROP COLUMN expunged_at; \
             ALTER TABLE mailboxes DROP COLUMN vanished_floor; \
             ALTER TABLE entries DROP COLUMN save_date; \
             DROP TABLE metadata; DROP TABLE threads; DROP TABLE urlauth_keys; DROP TABLE body_meta; \
             DROP TABLE body_chunks; DROP INDEX bodies_size; \
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .expect("downgrade");
    }
    let store = open(dir.path());
    let subs = store.subscriptions("a@x".into()).await.expect("subs");
    assert!(subs.contains(&"Sent".to_string()), "{subs:?}");
    assert!(!subs.contains(&"Junk".to_string()), "{subs:?}");
}

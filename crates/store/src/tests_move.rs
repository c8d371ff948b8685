//! SQLite-specific tests of [`Store::move_messages`] (RFC 6851 MOVE as
//! one transaction): body rows, reference counts and tombstone rows, and
//! a failure inside the writer's transaction. The behaviour is in
//! `conformance/moves.rs`.

use crate::conformance::moves::setup;
use crate::tests::{count, open, raw_db, tempdir};
use crate::*;

#[tokio::test]
async fn move_shares_bodies_and_leaves_tombstones() {
    let dir = tempdir();
    let store = open(dir.path());
    let (inbox_id, archive) = setup(&*store, 3).await;
    store
        .set_flags(inbox_id, vec![Uid(2)], FlagOp::Add, vec!["\\Seen".into()])
        .await
        .expect("flags");
    let before = store.messages(inbox_id).await.expect("msgs");
    let bodies_before = count(&raw_db(dir.path()), "SELECT count(*) FROM bodies");

    // Uid(9) does not exist and is skipped; the order given does not matter.
    let pairs = store
        .move_messages(inbox_id, vec![Uid(3), Uid(9), Uid(2)], archive)
        .await
        .expect("move");
    assert_eq!(pairs, vec![(Uid(2), Uid(1)), (Uid(3), Uid(2))]);

    let left = store.messages(inbox_id).await.expect("msgs");
    assert_eq!(left.iter().map(|m| m.uid).collect::<Vec<_>>(), [Uid(1)]);
    let moved = store.messages(archive).await.expect("msgs");
    assert_eq!(moved.len(), 2);
    // Same bodies, flags and dates: nothing was copied but the entry.
    assert_eq!(moved[0].body, before[1].body);
    assert_eq!(moved[0].flags, vec!["\\Seen".to_string()]);
    assert_eq!(moved[1].body, before[2].body);
    assert_eq!(moved[1].internal_date, before[2].internal_date);
    let db = raw_db(dir.path());
    assert_eq!(count(&db, "SELECT count(*) FROM bodies"), bodies_before);
    assert_eq!(count(&db, "SELECT max(refs) FROM bodies"), 1);
    // Tombstones for the sources, for QRESYNC later (RFC 7162 3.2.5).
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM expunged WHERE mailbox_id = {}",
                inbox_id.0
            )
        ),
        2
    );
    // UIDs of the source are never reused.
    let again = store
        .append(inbox_id, b"new".to_vec(), vec![], 0)
        .await
        .expect("append");
    assert_eq!(again, Uid(4));
}

#[tokio::test]
async fn failed_move_moves_nothing() {
    let dir = tempdir();
    let store = open(dir.path());
    let (inbox_id, archive) = setup(&*store, 2).await;
    // The destination has room for one more UID only: the second message
    // fails part-way, after the first was already moved inside the job.
    let last = i64::from(u32::MAX) - 1;
    store
        .write(move |c| {
            c.execute(
                "UPDATE mailboxes SET uidnext = ?1 WHERE id = ?2",
                [last, archive.0],
            )
            .map(|_| ())
            .map_err(crate::schema::map_err)
        })
        .await
        .expect("squeeze");
    let err = store
        .move_messages(inbox_id, vec![Uid(1), Uid(2)], archive)
        .await
        .expect_err("UID space exhausted");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    // Neither lost nor duplicated: the savepoint undid the first half too.
    assert_eq!(store.messages(inbox_id).await.expect("msgs").len(), 2);
    assert!(store.messages(archive).await.expect("msgs").is_empty());
    let db = raw_db(dir.path());
    assert_eq!(count(&db, "SELECT count(*) FROM expunged"), 0);
    assert_eq!(count(&db, "SELECT sum(refs) FROM bodies"), 2);
}

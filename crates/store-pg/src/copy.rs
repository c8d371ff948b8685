//! `mailroom migrate --to postgres://...` (SPEC 7, issue 21): copies an
//! embedded data directory's store and directory into an empty
//! PostgreSQL database, keeping what clients rely on: mailbox ids,
//! UIDVALIDITY, UIDNEXT, UIDs, flags, internal dates and mod-sequences
//! (so a client's cache and CONDSTORE/QRESYNC state stay valid),
//! tombstones, subscriptions, import digests, the outbound queue with its
//! DSN parameters, users with their hashes and SCRAM keys, aliases and
//! lists in their order, forwards, the SCRAM fake-salt secret, and the
//! named shared values the caller passes (SRS secret, DKIM keys).
//!
//! The whole copy is ONE transaction: a failure or a kill part-way leaves
//! the target as empty as it was, so a rerun starts over cleanly, and a
//! target that holds anything (accounts, bodies, queue, users, aliases,
//! lists, shared values) is refused before a row is written. The source is
//! read through read-only SQLite connections; the caller stops the server
//! first (or accepts that mail arriving meanwhile stays behind).
//!
//! The change log is not copied: sessions on the new backend start from
//! the mailboxes' state, and their mod-sequences are unchanged.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use store::StoreError;
use tokio_postgres::types::ToSql;

use crate::{BODY_CHUNK, PgOptions, build_pool, map_err, pool_err, schema};

/// What [`copy_from_sqlite`] reads.
pub struct CopySource<'a> {
    /// `store.db` of the data directory.
    pub store_db: &'a Path,
    /// `directory.db` of the data directory.
    pub directory_db: &'a Path,
    /// Named values for `shared_state` (the SRS secret, DKIM keys).
    pub shared: Vec<(String, String)>,
}

/// How many rows of each kind were copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub accounts: u64,
    pub mailboxes: u64,
    pub bodies: u64,
    pub messages: u64,
    pub tombstones: u64,
    pub subscriptions: u64,
    pub queue: u64,
    pub users: u64,
    pub aliases: u64,
    pub lists: u64,
    pub forwards: u64,
    pub shared: u64,
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Io(format!("{}: {e}", path.display()))
}

fn open_source(path: &Path) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(path))
}

/// Copies the embedded store and directory at `src` into the database of
/// `opts` (its schema made or brought up to date first), in one
/// transaction; `progress(what, rows)` is called as rows go. Refuses a
/// target that holds data with [`StoreError::Invalid`].
pub async fn copy_from_sqlite(
    opts: &PgOptions,
    src: CopySource<'_>,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Copied, StoreError> {
    let store = open_source(src.store_db)?;
    let dir = open_source(src.directory_db)?;
    let pool = build_pool(&opts.pg_config()?, 1)?;
    let mut client = pool.get().await.map_err(pool_err)?;
    schema::migrate(&mut client).await?;
    crate::directory::migrate(&mut client)
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?;
    let tx = client.transaction().await.map_err(map_err)?;
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM bodies)
                  + (SELECT count(*) FROM queue) + (SELECT count(*) FROM users)
                  + (SELECT count(*) FROM aliases) + (SELECT count(*) FROM lists)
                  + (SELECT count(*) FROM shared_state)",
            &[],
        )
        .await
        .map_err(map_err)?
        .try_get(0)
        .map_err(map_err)?;
    if held > 0 {
        return Err(StoreError::Invalid(format!(
            "the target database is not empty ({held} rows of mail, queue, directory or shared \
             state): migrate copies only into an empty database"
        )));
    }
    let mut n = Copied::default();
    let e = sqlite_err(src.store_db);

    // Plain rows first: each table's rows as SQL values, inserted one by
    // one with a prepared statement.
    macro_rules! rows {
        ($conn:expr, $err:expr, $select:expr, $insert:expr, $what:expr, $count:expr,
         |$r:ident| ($($v:expr),* $(,)?)) => {{
            let st = tx.prepare($insert).await.map_err(map_err)?;
            let mut stmt = $conn.prepare($select).map_err(&$err)?;
            let mut rows = stmt.query([]).map_err(&$err)?;
            while let Some($r) = rows.next().map_err(&$err)? {
                let values: Vec<Box<dyn ToSql + Sync + Send>> = vec![$(Box::new($v)),*];
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
                tx.execute(&st, &refs).await.map_err(map_err)?;
                $count += 1;
                if $count % 1000 == 0 {
                    progress($what, $count);
                }
            }
            progress($what, $count);
        }};
    }
    let get_i = |r: &rusqlite::Row<'_>, i: usize| r.get::<_, i64>(i);
    let get_s = |r: &rusqlite::Row<'_>, i: usize| r.get::<_, String>(i);
    let get_os = |r: &rusqlite::Row<'_>, i: usize| r.get::<_, Option<String>>(i);

    rows!(
        store,
        e,
        "SELECT name, created FROM accounts ORDER BY name",
        "INSERT INTO accounts (name, created) VALUES ($1, $2)",
        "accounts",
        n.accounts,
        |r| (get_s(r, 0).map_err(&e)?, get_i(r, 1).map_err(&e)?)
    );
    rows!(
        store,
        e,
        "SELECT id, account, name, uidvalidity, uidnext, highestmodseq, special_use,
             vanished_floor FROM mailboxes ORDER BY id",
        "INSERT INTO mailboxes (id, account, name, uidvalidity, uidnext, highestmodseq,
             special_use, vanished_floor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        "mailboxes",
        n.mailboxes,
        |r| (
            get_i(r, 0).map_err(&e)?,
            get_s(r, 1).map_err(&e)?,
            get_s(r, 2).map_err(&e)?,
            get_i(r, 3).map_err(&e)?,
            get_i(r, 4).map_err(&e)?,
            get_i(r, 5).map_err(&e)?,
            get_os(r, 6).map_err(&e)?,
            get_i(r, 7).map_err(&e)?
        )
    );
    rows!(
        store,
        e,
        "SELECT account, name FROM subscriptions",
        "INSERT INTO subscriptions (account, name) VALUES ($1, $2)",
        "subscriptions",
        n.subscriptions,
        |r| (get_s(r, 0).map_err(&e)?, get_s(r, 1).map_err(&e)?)
    );

    // Bodies, one at a time, in chunks of BODY_CHUNK as the store writes
    // them; `refs` starts at 0 and the trigger counts the entries and
    // queue rows inserted below.
    {
        let body = tx
            .prepare("INSERT INTO bodies (id, size, refs) VALUES ($1, $2, 0)")
            .await
            .map_err(map_err)?;
        let chunk = tx
            .prepare("INSERT INTO body_chunks (body_id, n, data) VALUES ($1, $2, $3)")
            .await
            .map_err(map_err)?;
        let mut stmt = store
            .prepare("SELECT id, size, data FROM bodies ORDER BY id")
            .map_err(&e)?;
        let mut rows = stmt.query([]).map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let id = get_i(r, 0).map_err(&e)?;
            let size = get_i(r, 1).map_err(&e)?;
            let data: Vec<u8> = r.get(2).map_err(&e)?;
            tx.execute(&body, &[&id, &size]).await.map_err(map_err)?;
            for (i, piece) in data.chunks(BODY_CHUNK).enumerate() {
                let i =
                    i32::try_from(i).map_err(|_| StoreError::Invalid("body too large".into()))?;
                tx.execute(&chunk, &[&id, &i, &piece])
                    .await
                    .map_err(map_err)?;
            }
            n.bodies += 1;
            if n.bodies % 1000 == 0 {
                progress("bodies", n.bodies);
            }
        }
        progress("bodies", n.bodies);
    }
    rows!(
        store,
        e,
        "SELECT mailbox_id, uid, body_id, flags, internal_date, modseq, save_date FROM entries
         ORDER BY mailbox_id, uid",
        "INSERT INTO entries (mailbox_id, uid, body_id, flags, internal_date, modseq, save_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        "messages",
        n.messages,
        |r| (
            get_i(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            get_i(r, 2).map_err(&e)?,
            get_s(r, 3).map_err(&e)?,
            get_i(r, 4).map_err(&e)?,
            get_i(r, 5).map_err(&e)?,
            r.get::<_, Option<i64>>(6).map_err(&e)?
        )
    );
    rows!(
        store,
        e,
        "SELECT mailbox_id, uid, modseq, expunged_at FROM expunged",
        "INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) VALUES ($1, $2, $3, $4)",
        "tombstones",
        n.tombstones,
        |r| (
            get_i(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            get_i(r, 2).map_err(&e)?,
            get_i(r, 3).map_err(&e)?
        )
    );
    let mut imports = 0u64;
    rows!(
        store,
        e,
        "SELECT mailbox, digest FROM imports",
        "INSERT INTO imports (mailbox, digest) VALUES ($1, $2)",
        "import digests",
        imports,
        |r| (
            get_i(r, 0).map_err(&e)?,
            r.get::<_, Vec<u8>>(1).map_err(&e)?
        )
    );
    // IMAP METADATA entries (RFC 5464), threads (RFC 8474) and URLAUTH
    // keys (RFC 4467): mailbox and body ids are kept, so they still match.
    let mut extras = 0u64;
    rows!(
        store,
        e,
        "SELECT account, mailbox, name, value FROM metadata",
        "INSERT INTO metadata (account, mailbox, name, value) VALUES ($1, $2, $3, $4)",
        "metadata entries",
        extras,
        |r| (
            get_s(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            get_s(r, 2).map_err(&e)?,
            r.get::<_, Vec<u8>>(3).map_err(&e)?
        )
    );
    rows!(
        store,
        e,
        "SELECT account, body_id, message_id, thread_id FROM threads",
        "INSERT INTO threads (account, body_id, message_id, thread_id) VALUES ($1, $2, $3, $4)",
        "threads",
        extras,
        |r| (
            get_s(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            get_os(r, 2).map_err(&e)?,
            get_i(r, 3).map_err(&e)?
        )
    );
    rows!(
        store,
        e,
        "SELECT account, mailbox, key FROM urlauth_keys",
        "INSERT INTO urlauth_keys (account, mailbox, key) VALUES ($1, $2, $3)",
        "URLAUTH keys",
        extras,
        |r| (
            get_s(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            r.get::<_, Vec<u8>>(2).map_err(&e)?
        )
    );
    // A row some node was sending when the source stopped is due again:
    // no node of the new backend holds its lease.
    rows!(
        store,
        e,
        "SELECT id, body_id, sender, recipient,
                CASE status WHEN 'sending' THEN 'queued' ELSE status END,
                attempts, next_attempt, created, last_error, envid, ret, notify, orcpt,
                smtputf8 != 0, warned != 0, notice != 0
         FROM queue ORDER BY id",
        "INSERT INTO queue (id, body_id, sender, recipient, status, attempts, next_attempt,
             created, last_error, envid, ret, notify, orcpt, smtputf8, warned, notice)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        "queue",
        n.queue,
        |r| (
            get_i(r, 0).map_err(&e)?,
            get_i(r, 1).map_err(&e)?,
            get_s(r, 2).map_err(&e)?,
            get_s(r, 3).map_err(&e)?,
            get_s(r, 4).map_err(&e)?,
            get_i(r, 5).map_err(&e)?,
            get_i(r, 6).map_err(&e)?,
            get_i(r, 7).map_err(&e)?,
            get_os(r, 8).map_err(&e)?,
            get_os(r, 9).map_err(&e)?,
            get_os(r, 10).map_err(&e)?,
            get_os(r, 11).map_err(&e)?,
            get_os(r, 12).map_err(&e)?,
            r.get::<_, bool>(13).map_err(&e)?,
            r.get::<_, bool>(14).map_err(&e)?,
            r.get::<_, bool>(15).map_err(&e)?
        )
    );

    // New ids and UIDVALIDITYs continue above the copied ones.
    let last_uidvalidity: i64 = store
        .query_row(
            "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta
                              WHERE key = 'last_uidvalidity'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(&e)?;
    tx.batch_execute(
        "SELECT setval('mailboxes_id_seq', GREATEST((SELECT max(id) FROM mailboxes), 1));
         SELECT setval('bodies_id_seq', GREATEST((SELECT max(id) FROM bodies), 1));
         SELECT setval('queue_id_seq', GREATEST((SELECT max(id) FROM queue), 1));",
    )
    .await
    .map_err(map_err)?;
    tx.execute(
        "SELECT setval('uidvalidity_seq', GREATEST(
             (SELECT last_value FROM uidvalidity_seq),
             (SELECT COALESCE(max(uidvalidity), 0) FROM mailboxes), $1))",
        &[&last_uidvalidity],
    )
    .await
    .map_err(map_err)?;

    // The directory.
    let e = sqlite_err(src.directory_db);
    rows!(
        dir,
        e,
        "SELECT address, full_name, password_hash, local_folded, name_folded, scram_salt,
                scram_iterations, scram_stored_key, scram_server_key, quota_storage,
                quota_messages
         FROM users ORDER BY address",
        "INSERT INTO users (address, full_name, password_hash, local_folded, name_folded,
             scram_salt, scram_iterations, scram_stored_key, scram_server_key, quota_storage,
             quota_messages) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        "users",
        n.users,
        |r| (
            get_s(r, 0).map_err(&e)?,
            get_os(r, 1).map_err(&e)?,
            get_s(r, 2).map_err(&e)?,
            get_s(r, 3).map_err(&e)?,
            get_os(r, 4).map_err(&e)?,
            r.get::<_, Option<Vec<u8>>>(5).map_err(&e)?,
            r.get::<_, Option<i32>>(6).map_err(&e)?,
            r.get::<_, Option<Vec<u8>>>(7).map_err(&e)?,
            r.get::<_, Option<Vec<u8>>>(8).map_err(&e)?,
            r.get::<_, Option<i64>>(9).map_err(&e)?,
            r.get::<_, Option<i64>>(10).map_err(&e)?
        )
    );
    // Insertion order (rowid) becomes the `id` order.
    rows!(
        dir,
        e,
        "SELECT address, target FROM aliases ORDER BY rowid",
        "INSERT INTO aliases (address, target) VALUES ($1, $2)",
        "aliases",
        n.aliases,
        |r| (get_s(r, 0).map_err(&e)?, get_s(r, 1).map_err(&e)?)
    );
    rows!(
        dir,
        e,
        "SELECT address, member FROM lists ORDER BY rowid",
        "INSERT INTO lists (address, member) VALUES ($1, $2)",
        "lists",
        n.lists,
        |r| (get_s(r, 0).map_err(&e)?, get_s(r, 1).map_err(&e)?)
    );
    rows!(
        dir,
        e,
        "SELECT address, target, keep, refuse FROM forwards",
        "INSERT INTO forwards (address, target, keep, refuse) VALUES ($1, $2, $3, $4)",
        "forwards",
        n.forwards,
        |r| (
            get_s(r, 0).map_err(&e)?,
            get_s(r, 1).map_err(&e)?,
            r.get::<_, bool>(2).map_err(&e)?,
            r.get::<_, bool>(3).map_err(&e)?
        )
    );
    // The same fake SCRAM salts as before: unknown names look the same.
    let secret: Option<String> = dir
        .query_row(
            "SELECT value FROM meta WHERE key = 'scram_secret'",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(secret) = secret {
        tx.execute(
            "UPDATE directory_meta SET value = $1 WHERE key = 'scram_secret'",
            &[&secret],
        )
        .await
        .map_err(map_err)?;
    }
    for (name, value) in &src.shared {
        tx.execute(
            "INSERT INTO shared_state (name, value) VALUES ($1, $2)",
            &[name, value],
        )
        .await
        .map_err(map_err)?;
        n.shared += 1;
    }
    progress("shared values", n.shared);
    tx.commit().await.map_err(map_err)?;
    Ok(n)
}

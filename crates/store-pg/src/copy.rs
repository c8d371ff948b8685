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
//! The copy is resumable (issue 21): it runs in batches of committed
//! transactions, table by table in a fixed order, each batch committing
//! its rows together with the `migrate_marker` row that records the
//! source (the data directory and a fingerprint of its contents) and the
//! progress (the table, and how many of its rows in key order are in).
//! A rerun after a failure or a kill -9 finds the marker, checks that it
//! names the same source with the same fingerprint, and goes on from
//! there: every row is copied exactly once, since a batch and its marker
//! update commit or vanish together. A target that holds data without a
//! marker, or another source's marker, is refused before a row is
//! written; a source that changed since the interrupted run is refused
//! too (its rows in key order would no longer line up with the offset).
//! The last transaction sets the sequences, the SCRAM secret and the
//! shared values and marks the copy finished; until then
//! [`crate::PgStore::open`] refuses to serve the database
//! ([`refuse_unfinished`]). Runs are serialised by a session advisory
//! lock. The source is read through read-only SQLite connections; the
//! caller stops the server first.
//!
//! The change log is not copied: sessions on the new backend start from
//! the mailboxes' state, and their mod-sequences are unchanged.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use store::StoreError;
use tokio_postgres::types::ToSql;

use crate::{BODY_CHUNK, PgOptions, build_pool, map_err, pool_err, schema};

mod steps;

use steps::STEPS;

/// What [`copy_from_sqlite`] reads.
pub struct CopySource<'a> {
    /// `store.db` of the data directory.
    pub store_db: &'a Path,
    /// `directory.db` of the data directory.
    pub directory_db: &'a Path,
    /// Named values for `shared_state` (the SRS secret, DKIM keys).
    pub shared: Vec<(String, String)>,
    /// What names the source in the target's marker (the data
    /// directory's canonical path): a rerun resumes only a copy of the
    /// same source.
    pub identity: String,
    /// Rows per committed batch (bodies: also at most
    /// [`MIGRATE_BATCH_BYTES`]); 0 means [`MIGRATE_BATCH`].
    pub batch: usize,
}

/// Default rows per committed batch of `mailroom migrate`: large enough
/// that commits (one WAL flush each) cost little, small enough that a
/// rerun redoes little.
pub const MIGRATE_BATCH: usize = 1000;

/// Most body bytes in one batch, so that a batch of big messages is not
/// one huge transaction.
pub const MIGRATE_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// The session advisory lock that keeps two `migrate` runs into one
/// database apart ("mailmigr" in ASCII).
const COPY_LOCK: i64 = 0x6d61_696c_6d69_6772;

/// One report of [`copy_from_sqlite`]: after each committed batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The table being copied.
    pub what: &'a str,
    /// Rows committed so far, over all tables (a resumed run starts at
    /// what the earlier runs committed).
    pub done: u64,
    /// Rows to copy in all.
    pub total: u64,
    /// Batches committed by this run.
    pub batches: u64,
    /// The copy is complete (the last batch committed).
    pub finished: bool,
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
    /// Import digests, METADATA entries, threads and URLAUTH keys.
    pub other: u64,
    /// The table an interrupted earlier run had reached, when this run
    /// resumed it.
    pub resumed_at: Option<String>,
    /// The target held this source's finished copy: nothing was done.
    pub already_complete: bool,
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

/// The marker's `step` once everything is in.
const FINISHED: &str = "finished";

/// The marker of an earlier run.
struct Marker {
    source: String,
    fingerprint: String,
    step: String,
    done: i64,
}

/// Copies the embedded store and directory at `src` into the database of
/// `opts` (its schema made or brought up to date first), in batches of
/// committed transactions, resuming an interrupted copy of the same
/// source; `progress` is called after each batch. Refuses, with
/// [`StoreError::Invalid`], a target that holds data without this
/// source's marker, and a source that changed since the interrupted run.
pub async fn copy_from_sqlite(
    opts: &PgOptions,
    src: CopySource<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Copied, StoreError> {
    let store = open_source(src.store_db)?;
    let dir = open_source(src.directory_db)?;
    let batch = if src.batch == 0 {
        MIGRATE_BATCH
    } else {
        src.batch
    };
    let pool = build_pool(&opts.pg_config()?, 1)?;
    let mut client = pool.get().await.map_err(pool_err)?;
    schema::migrate(&mut client).await?;
    crate::directory::migrate(&mut client)
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&COPY_LOCK])
        .await
        .map_err(map_err)?
        .try_get(0)
        .map_err(map_err)?;
    if !locked {
        return Err(StoreError::Invalid(
            "another mailroom migrate is writing into this database".to_string(),
        ));
    }

    // What there is to copy, and the source's fingerprint.
    let mut totals = Vec::with_capacity(STEPS.len());
    for step in STEPS {
        let conn = step.conn(&store, &dir);
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", step.table), [], |r| {
                r.get(0)
            })
            .map_err(sqlite_err(step.path(&src)))?;
        totals.push(u64::try_from(n).unwrap_or(0));
    }
    let fingerprint = steps::fingerprint(&store, &dir, &totals, &src)?;
    let total: u64 = totals.iter().sum();
    let mut copied = Copied::default();
    for (step, n) in STEPS.iter().zip(&totals) {
        *step.counter(&mut copied) += n;
    }
    copied.shared = src.shared.len() as u64;

    // The marker: none (a fresh copy into an empty target), or this
    // source's (resume), else refuse.
    let tx = client.transaction().await.map_err(map_err)?;
    let marker = tx
        .query_opt(
            "SELECT source, fingerprint, step, done FROM migrate_marker WHERE id = 1",
            &[],
        )
        .await
        .map_err(map_err)?
        .map(|r| -> Result<Marker, StoreError> {
            Ok(Marker {
                source: r.try_get(0).map_err(map_err)?,
                fingerprint: r.try_get(1).map_err(map_err)?,
                step: r.try_get(2).map_err(map_err)?,
                done: r.try_get(3).map_err(map_err)?,
            })
        })
        .transpose()?;
    let (mut at, mut offset) = match marker {
        None => {
            let held = held_rows(&tx).await?;
            if held > 0 {
                return Err(StoreError::Invalid(format!(
                    "the target database is not empty ({held} rows of mail, queue, directory                      or shared state) and holds no migrate marker: migrate copies only into an                      empty database, or resumes its own interrupted copy"
                )));
            }
            let first = STEPS.first().map_or(FINISHED, |s| s.name);
            tx.execute(
                "INSERT INTO migrate_marker (id, source, fingerprint, step, done)                  VALUES (1, $1, $2, $3, 0)",
                &[&src.identity, &fingerprint, &first],
            )
            .await
            .map_err(map_err)?;
            (0, 0u64)
        }
        Some(m) if m.source != src.identity => {
            return Err(StoreError::Invalid(format!(
                "the target database holds a migrate from {} (at {}), not from {}: use another                  (empty) database",
                m.source, m.step, src.identity
            )));
        }
        Some(m) if m.step == FINISHED => {
            copied.already_complete = true;
            return Ok(copied);
        }
        Some(m) if m.fingerprint != fingerprint => {
            return Err(StoreError::Invalid(format!(
                "{} changed since the interrupted migrate (at {}; was the server running?):                  its copy cannot be resumed; drop and create the target database, then migrate                  again with the server stopped",
                src.identity, m.step
            )));
        }
        Some(m) => {
            let at = STEPS.iter().position(|s| s.name == m.step).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "the migrate marker names step {:?}, unknown to this mailroom",
                    m.step
                ))
            })?;
            copied.resumed_at = Some(m.step.clone());
            (at, u64::try_from(m.done).unwrap_or(0))
        }
    };
    tx.commit().await.map_err(map_err)?;

    let mut done: u64 = totals.iter().take(at).sum::<u64>() + offset;
    let mut batches = 0u64;
    while let Some(step) = STEPS.get(at) {
        let conn = step.conn(&store, &dir);
        let e = sqlite_err(step.path(&src));
        let insert = client.prepare(step.insert).await.map_err(map_err)?;
        let chunk = client
            .prepare("INSERT INTO body_chunks (body_id, n, data) VALUES ($1, $2, $3)")
            .await
            .map_err(map_err)?;
        let mut stmt = conn
            .prepare(&format!("{} LIMIT -1 OFFSET ?1", step.select))
            .map_err(&e)?;
        let skip = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut rows = stmt.query([skip]).map_err(&e)?;
        let mut tx = client.transaction().await.map_err(map_err)?;
        let (mut in_batch, mut bytes) = (0usize, 0usize);
        while let Some(r) = rows.next().map_err(&e)? {
            if step.name == "bodies" {
                bytes += copy_body(&tx, conn, r, &insert, &chunk)
                    .await
                    .map_err(|x| x.or(&e))?;
            } else {
                let values = (step.values)(r).map_err(&e)?;
                let refs: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&insert, &refs).await.map_err(map_err)?;
            }
            offset += 1;
            done += 1;
            in_batch += 1;
            if in_batch >= batch || bytes >= MIGRATE_BATCH_BYTES {
                set_marker(&tx, step.name, offset).await?;
                tx.commit().await.map_err(map_err)?;
                batches += 1;
                progress(Progress {
                    what: step.name,
                    done,
                    total,
                    batches,
                    finished: false,
                });
                tx = client.transaction().await.map_err(map_err)?;
                (in_batch, bytes) = (0, 0);
            }
        }
        at += 1;
        offset = 0;
        if let Some(next) = STEPS.get(at) {
            set_marker(&tx, next.name, 0).await?;
            tx.commit().await.map_err(map_err)?;
            batches += 1;
            progress(Progress {
                what: step.name,
                done,
                total,
                batches,
                finished: false,
            });
        } else {
            // The last table's rest commits with the finishing touches.
            finish(&tx, &store, src.store_db, &src.shared, dir_secret(&dir)).await?;
            set_marker(&tx, FINISHED, 0).await?;
            tx.commit().await.map_err(map_err)?;
            progress(Progress {
                what: FINISHED,
                done,
                total,
                batches: batches + 1,
                finished: true,
            });
        }
    }
    Ok(copied)
}

/// Rows of anything a copy writes: a target without a marker must have
/// none.
async fn held_rows(tx: &tokio_postgres::Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_one(
        "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM bodies)
              + (SELECT count(*) FROM queue) + (SELECT count(*) FROM users)
              + (SELECT count(*) FROM aliases) + (SELECT count(*) FROM lists)
              + (SELECT count(*) FROM shared_state)",
        &[],
    )
    .await
    .map_err(map_err)?
    .try_get(0)
    .map_err(map_err)
}

async fn set_marker(
    tx: &tokio_postgres::Transaction<'_>,
    step: &str,
    done: u64,
) -> Result<(), StoreError> {
    let done = i64::try_from(done).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE migrate_marker SET step = $1, done = $2, updated = now() WHERE id = 1",
        &[&step, &done],
    )
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Why copying one body failed: the source or the target.
enum BodyErr {
    Source(rusqlite::Error),
    Target(StoreError),
}

impl BodyErr {
    fn or(self, source: &impl Fn(rusqlite::Error) -> StoreError) -> StoreError {
        match self {
            BodyErr::Source(e) => source(e),
            BodyErr::Target(e) => e,
        }
    }
}

/// One body, in chunks of [`BODY_CHUNK`] as the store writes them; `refs`
/// starts at 0 and the trigger counts the entries and queue rows
/// inserted later. Returns its size.
async fn copy_body(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Connection,
    r: &rusqlite::Row<'_>,
    body: &tokio_postgres::Statement,
    chunk: &tokio_postgres::Statement,
) -> Result<usize, BodyErr> {
    let id: i64 = r.get(0).map_err(BodyErr::Source)?;
    let size: i64 = r.get(1).map_err(BodyErr::Source)?;
    let data: Vec<u8> = r.get(2).map_err(BodyErr::Source)?;
    let target = |e| BodyErr::Target(map_err(e));
    let too_large = || BodyErr::Target(StoreError::Invalid("body too large".into()));
    tx.execute(body, &[&id, &size]).await.map_err(target)?;
    if i64::try_from(data.len()).ok() == Some(size) {
        for (i, piece) in data.chunks(BODY_CHUNK).enumerate() {
            let i = i32::try_from(i).map_err(|_| too_large())?;
            tx.execute(chunk, &[&id, &i, &piece])
                .await
                .map_err(target)?;
        }
        return Ok(data.len());
    }
    // A spooled body (SQLite's V_BODY_CHUNKS) is in chunk rows already
    // cut at BODY_CHUNK, as PostgreSQL's are: copied one at a time.
    let mut stmt = src
        .prepare_cached("SELECT seq, data FROM body_chunks WHERE body_id = ?1 ORDER BY seq")
        .map_err(BodyErr::Source)?;
    let mut rows = stmt.query([id]).map_err(BodyErr::Source)?;
    let mut copied = 0usize;
    while let Some(row) = rows.next().map_err(BodyErr::Source)? {
        let seq: i64 = row.get(0).map_err(BodyErr::Source)?;
        let piece: Vec<u8> = row.get(1).map_err(BodyErr::Source)?;
        let i = i32::try_from(seq).map_err(|_| too_large())?;
        tx.execute(chunk, &[&id, &i, &piece])
            .await
            .map_err(target)?;
        copied += piece.len();
    }
    if i64::try_from(copied).ok() != Some(size) {
        return Err(BodyErr::Target(StoreError::Invalid(format!(
            "body {id}: {copied} of its {size} octets found in the source"
        ))));
    }
    Ok(copied)
}

/// The directory's SCRAM fake-salt secret, if it has one.
fn dir_secret(dir: &Connection) -> Option<String> {
    dir.query_row(
        "SELECT value FROM meta WHERE key = 'scram_secret'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// The last transaction's work: sequences above the copied ids, the
/// SCRAM secret, the shared values.
async fn finish(
    tx: &tokio_postgres::Transaction<'_>,
    store: &Connection,
    store_db: &Path,
    shared: &[(String, String)],
    scram_secret: Option<String>,
) -> Result<(), StoreError> {
    // New ids and UIDVALIDITYs continue above the copied ones.
    let last_uidvalidity: i64 = store
        .query_row(
            "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta
                              WHERE key = 'last_uidvalidity'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_err(store_db))?;
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
    // The same fake SCRAM salts as before: unknown names look the same.
    if let Some(secret) = scram_secret {
        tx.execute(
            "UPDATE directory_meta SET value = $1 WHERE key = 'scram_secret'",
            &[&secret],
        )
        .await
        .map_err(map_err)?;
    }
    for (name, value) in shared {
        tx.execute(
            "INSERT INTO shared_state (name, value) VALUES ($1, $2)",
            &[name, value],
        )
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Refuses to serve a database whose `mailroom migrate` has not
/// finished: it holds part of the source's mail.
pub(crate) async fn refuse_unfinished(
    client: &deadpool_postgres::Object,
) -> Result<(), StoreError> {
    let row = client
        .query_opt(
            "SELECT source, step FROM migrate_marker WHERE id = 1 AND step <> $1",
            &[&FINISHED],
        )
        .await
        .map_err(map_err)?;
    if let Some(r) = row {
        let source: String = r.try_get(0).map_err(map_err)?;
        let step: String = r.try_get(1).map_err(map_err)?;
        return Err(StoreError::Invalid(format!(
            "this PostgreSQL database holds an unfinished mailroom migrate from {source}              (stopped at {step}): run the same migrate again to finish it before serving"
        )));
    }
    Ok(())
}

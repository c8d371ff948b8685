//! The SQL of each write operation. Every function here runs on the writer
//! thread inside the batch transaction and the job's savepoint (see
//! `writer.rs`); none of them commits. Each one records its changes in the
//! `changes` table so that the feed publishes them after the commit.
//!
//! This module holds the shared helpers (validation, UID and mod-sequence
//! allocation, bodies); `mailboxes` has the account and mailbox operations,
//! `messages` the delivery and per-message ones.
//!
//! UIDs (RFC 9051 2.3.1.1) come from `mailboxes.uidnext`, which only grows;
//! a mailbox created again under an old name gets a new UIDVALIDITY, so its
//! UIDs may start again at 1. Every change to a mailbox bumps its
//! `highestmodseq` and stamps the entry with it (RFC 7162 3.1).

pub mod body_meta;
mod mailboxes;
mod messages;
pub mod metadata;
pub mod queue;
pub mod threads;
pub mod urlauth;

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::feed::record;
use crate::schema::map_err;
use crate::{BodyId, MailboxId, SPECIAL_MAILBOXES, StoreError, Uid};

pub use mailboxes::{
    create_mailbox, delete_account, delete_mailbox, ensure_account, rename_mailbox, set_subscribed,
};
pub use messages::{
    append, append_many_within, append_parts_within, append_within, copy, copy_within, deliver,
    expunge, import, import_parts, move_messages, set_flags, set_flags_if,
};

/// Largest message body the store accepts. SQLite's default
/// SQLITE_MAX_LENGTH is 1,000,000,000 bytes per BLOB; stay well below. The
/// SMTP SIZE limit (SPEC 8) is much smaller and is enforced before this.
pub const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

/// Longest mailbox name, in bytes. RFC 9051 sets none; this bounds what a
/// client can make us store and index.
pub const MAX_MAILBOX_NAME: usize = 1024;

/// Longest account name, in bytes: RFC 5321 4.5.3.1.3, a path is at most
/// 256 octets.
pub const MAX_ACCOUNT_NAME: usize = 256;

/// Longest flag or keyword, in bytes. RFC 9051 sets none; bounds storage.
pub const MAX_FLAG_LEN: usize = 256;

/// Most flags and keywords on one entry; bounds the flags column.
pub const MAX_FLAGS_PER_MESSAGE: usize = 128;

/// The system flags that can be stored (RFC 9051 2.3.2); `\Recent` is
/// session state and is never stored.
const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The canonical form of an account name: lowercased, checked for
/// emptiness, length, whitespace and control characters.
pub fn canonical_account(account: &str) -> Result<String, StoreError> {
    if account.is_empty() || account.len() > MAX_ACCOUNT_NAME {
        return Err(StoreError::Invalid(format!(
            "account name must be 1..={MAX_ACCOUNT_NAME} bytes"
        )));
    }
    if account.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::Invalid(
            "account name contains whitespace or control characters".into(),
        ));
    }
    Ok(account.to_lowercase())
}

/// "INBOX" in any case is INBOX (RFC 9051 5.1); other names are exact.
pub fn normalize_mailbox_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

/// Checks a name for a new mailbox (create / rename target).
pub fn check_new_mailbox_name(name: &str) -> Result<String, StoreError> {
    let name = normalize_mailbox_name(name);
    if name.is_empty() || name.len() > MAX_MAILBOX_NAME {
        return Err(StoreError::Invalid(format!(
            "mailbox name must be 1..={MAX_MAILBOX_NAME} bytes"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '%') {
        return Err(StoreError::Invalid(
            "mailbox name contains a control character or a wildcard".into(),
        ));
    }
    if name.split('/').any(str::is_empty) {
        return Err(StoreError::Invalid(
            "mailbox name has an empty hierarchy level".into(),
        ));
    }
    Ok(name)
}

/// Validates and canonicalises flags: system flags get their RFC case,
/// `\Recent` is dropped, keywords must be atoms; duplicates (ignoring
/// case) are removed, first spelling kept.
pub fn normalize_flags(flags: Vec<String>) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    for flag in flags {
        let flag = if let Some(sys) = SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(&flag)) {
            (*sys).to_string()
        } else if flag.eq_ignore_ascii_case("\\Recent") {
            continue;
        } else if flag.starts_with('\\') {
            return Err(StoreError::Invalid(format!("unknown system flag {flag}")));
        } else if flag.is_empty()
            || flag.len() > MAX_FLAG_LEN
            || !flag
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
        {
            return Err(StoreError::Invalid(format!("bad keyword {flag:?}")));
        } else {
            flag
        };
        if !out.iter().any(|f| f.eq_ignore_ascii_case(&flag)) {
            out.push(flag);
        }
    }
    if out.len() > MAX_FLAGS_PER_MESSAGE {
        return Err(StoreError::Limit(format!(
            "more than {MAX_FLAGS_PER_MESSAGE} flags"
        )));
    }
    Ok(out)
}

pub fn flags_from_text(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn flags_to_text(flags: &[String]) -> String {
    flags.join(" ")
}

pub fn same_flags(a: &[String], b: &[String]) -> bool {
    let lower =
        |v: &[String]| -> HashSet<String> { v.iter().map(|f| f.to_ascii_lowercase()).collect() };
    lower(a) == lower(b)
}

/// A new UIDVALIDITY, unique across all mailboxes of the store ever:
/// max(now, last + 1), remembered in `meta`.
pub(super) fn next_uidvalidity(conn: &Connection) -> Result<u32, StoreError> {
    let last: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'last_uidvalidity'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    let last: u64 = last.and_then(|v| v.parse().ok()).unwrap_or(0);
    let next = (now().max(0) as u64).max(last + 1);
    let next = u32::try_from(next)
        .map_err(|_| StoreError::Invalid("UIDVALIDITY space exhausted".into()))?;
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_uidvalidity', ?1)",
        [next.to_string()],
    )
    .map_err(map_err)?;
    Ok(next)
}

/// Adds or removes one subscription; idempotent.
pub(super) fn subscribe(
    conn: &Connection,
    account: &str,
    name: &str,
    on: bool,
) -> Result<(), StoreError> {
    let sql = if on {
        "INSERT OR IGNORE INTO subscriptions (account, name) VALUES (?1, ?2)"
    } else {
        "DELETE FROM subscriptions WHERE account = ?1 AND name = ?2"
    };
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![account, name]))
        .map_err(map_err)?;
    Ok(())
}

pub(super) fn insert_mailbox(
    conn: &Connection,
    account: &str,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId, StoreError> {
    let uidvalidity = next_uidvalidity(conn)?;
    conn.prepare_cached(
        "INSERT INTO mailboxes (account, name, uidvalidity, uidnext, highestmodseq, special_use, \
         subscribed) VALUES (?1, ?2, ?3, 1, 1, ?4, 1)",
    )
    .and_then(|mut s| s.execute(params![account, name, uidvalidity, special_use]))
    .map_err(map_err)?;
    Ok(MailboxId(conn.last_insert_rowid()))
}

/// Creates the account and its special mailboxes if missing; true if it
/// was created.
pub(super) fn create_account_if_missing(
    conn: &Connection,
    account: &str,
) -> Result<bool, StoreError> {
    let now = now();
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO accounts (name, created) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![account, now]))
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(false);
    }
    for (name, special_use) in SPECIAL_MAILBOXES {
        insert_mailbox(conn, account, name, special_use)?;
        subscribe(conn, account, name, true)?;
    }
    record(conn, account, None, "mailboxes", None, None, now)?;
    Ok(true)
}

pub(super) fn account_exists(conn: &Connection, account: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM accounts WHERE name = ?1")
        .and_then(|mut s| s.exists([account]))
        .map_err(map_err)
}

pub(super) fn mailbox_id_by_name(
    conn: &Connection,
    account: &str,
    name: &str,
) -> Result<Option<MailboxId>, StoreError> {
    conn.prepare_cached("SELECT id FROM mailboxes WHERE account = ?1 AND name = ?2")
        .and_then(|mut s| {
            s.query_row(params![account, normalize_mailbox_name(name)], |r| {
                r.get(0).map(MailboxId)
            })
            .optional()
        })
        .map_err(map_err)
}

pub(super) fn require_mailbox(
    conn: &Connection,
    account: &str,
    name: &str,
) -> Result<MailboxId, StoreError> {
    mailbox_id_by_name(conn, account, name)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?} of {account}")))
}

/// The owning account of a mailbox, or NotFound.
pub(super) fn mailbox_account(conn: &Connection, mailbox: MailboxId) -> Result<String, StoreError> {
    conn.prepare_cached("SELECT account FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row([mailbox.0], |r| r.get(0)).optional())
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))
}

/// Allocates the next UID of a mailbox and a new mod-sequence for it.
pub(super) fn alloc_uid(
    conn: &Connection,
    mailbox: MailboxId,
) -> Result<(String, Uid, u64), StoreError> {
    let row: Option<(String, i64, i64)> = conn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = ?1 RETURNING account, uidnext - 1, highestmodseq",
        )
        .and_then(|mut s| {
            s.query_row([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(map_err)?;
    let (account, uid, modseq) =
        row.ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    // uidnext itself must still fit in 32 bits (RFC 9051: nz-number).
    if uid >= i64::from(u32::MAX) {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    Ok((account, Uid(uid as u32), modseq as u64))
}

/// A new mod-sequence for a mailbox (RFC 7162: strictly increasing).
pub(super) fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1 \
         RETURNING highestmodseq",
    )
    .and_then(|mut s| s.query_row([mailbox.0], |r| r.get::<_, i64>(0)))
    .map(|m| m as u64)
    .map_err(map_err)
}

/// Stores a body with no references yet. A body with a spooled tail is
/// written as `body_chunks` rows of [`crate::BODY_CHUNK`] octets, one at a
/// time (issue 19), so the writer never holds the message whole and a
/// later range read touches only the chunks it needs; the `bodies` row
/// keeps the size and an empty `data`.
pub(super) fn insert_body_parts(
    conn: &Connection,
    body: crate::BodyParts<'_>,
) -> Result<BodyId, StoreError> {
    let size = body.len();
    if size > MAX_BODY_BYTES as u64 {
        return Err(StoreError::Invalid(format!(
            "message larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    if body.tail.is_none_or(|t| t.is_empty()) {
        conn.prepare_cached("INSERT INTO bodies (data, size, refs) VALUES (?1, ?2, 0)")
            .and_then(|mut s| s.execute(params![body.head, size as i64]))
            .map_err(map_err)?;
        return Ok(BodyId(conn.last_insert_rowid()));
    }
    conn.prepare_cached("INSERT INTO bodies (data, size, refs) VALUES (X'', ?1, 0)")
        .and_then(|mut s| s.execute(params![size as i64]))
        .map_err(map_err)?;
    let id = conn.last_insert_rowid();
    let mut insert = conn
        .prepare_cached("INSERT INTO body_chunks (body_id, seq, data) VALUES (?1, ?2, ?3)")
        .map_err(map_err)?;
    let mut seq: i64 = 0;
    body.for_each_chunk(|chunk| {
        insert.execute(params![id, seq, chunk]).map_err(map_err)?;
        seq += 1;
        Ok(())
    })?;
    Ok(BodyId(id))
}

/// Inserts one entry; the body's reference count follows by trigger.
pub(super) fn insert_entry(
    conn: &Connection,
    mailbox: MailboxId,
    uid: Uid,
    body: BodyId,
    flags: &str,
    internal_date: i64,
    modseq: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        // RFC 8514: the save date is when the entry is made, whatever
        // its INTERNALDATE (a COPY keeps that, not this).
        "INSERT INTO entries (mailbox_id, uid, body_id, flags, internal_date, modseq, save_date) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch())",
    )
    .and_then(|mut s| {
        s.execute(params![
            mailbox.0,
            uid.0,
            body.0,
            flags,
            internal_date,
            modseq as i64
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

pub(super) fn record_expunge(
    conn: &Connection,
    mailbox: MailboxId,
    uid: Uid,
    modseq: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, expunged_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![mailbox.0, uid.0, modseq as i64, now()]))
    .map_err(map_err)?;
    Ok(())
}

/// Deletes the tombstones made before `older_than`, first raising each
/// affected mailbox's `vanished_floor` to the highest mod-sequence among
/// them; one writer job, so no read sees the rows gone without the floor.
pub fn trim_tombstones(conn: &Connection, older_than: i64) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "UPDATE mailboxes SET vanished_floor = MAX(vanished_floor, \
             (SELECT MAX(x.modseq) FROM expunged x \
              WHERE x.mailbox_id = mailboxes.id AND x.expunged_at < ?1)) \
         WHERE id IN (SELECT mailbox_id FROM expunged WHERE expunged_at < ?1)",
    )
    .and_then(|mut s| s.execute([older_than]))
    .map_err(map_err)?;
    let n = conn
        .prepare_cached("DELETE FROM expunged WHERE expunged_at < ?1")
        .and_then(|mut s| s.execute([older_than]))
        .map_err(map_err)?;
    Ok(n as u64)
}

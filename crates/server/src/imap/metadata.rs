//! METADATA and METADATA-SERVER (RFC 5464): GETMETADATA and SETMETADATA
//! on the server (mailbox `""`) and on the user's mailboxes.
//!
//! Entries are kept by the store ([`store::Store::metadata`]), per
//! account: with no ACL (RFC 4314) nobody else reaches a user's mailboxes,
//! so `/private` and `/shared` entries are both the user's, kept apart by
//! name. Limits (4.3): a value larger than `metadata_max_size` is
//! `NO [METADATA MAXSIZE n]`; more than `metadata_max_entries` entries on
//! the server or on one mailbox is `NO [METADATA TOOMANY]`, checked in the
//! store's transaction so two sessions cannot pass it together.

use proto_imap::metadata::{Depth, GetMetadata, SetMetadata};
use proto_imap::{Code, Data, Mailbox, MetadataCode};
use store::{MailboxId, StoreError};

use super::session::{CmdResult, ImapError, Out, Session, done};

/// Whether stored entry `name` answers the request for `asked` (both
/// lower case) at `depth` (RFC 5464 4.2.2).
fn wanted(name: &str, asked: &str, depth: Depth) -> bool {
    if name == asked {
        return true;
    }
    let Some(rest) = name.strip_prefix(asked).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    match depth {
        Depth::Zero => false,
        Depth::One => !rest.contains('/'),
        Depth::Infinity => true,
    }
}

impl Session {
    /// The mailbox a METADATA command names: None for the server.
    async fn metadata_target(&self, m: Option<&Mailbox>) -> Result<Option<MailboxId>, ImapError> {
        let Some(m) = m else {
            return Ok(None);
        };
        let account = self.account()?.to_string();
        match self
            .ctx
            .store
            .mailbox(account, m.as_str().to_string())
            .await?
        {
            Some(info) => Ok(Some(info.id)),
            None => Err(ImapError::no(Some(Code::NonExistent), "no such mailbox")),
        }
    }

    /// GETMETADATA (RFC 5464 4.2): one METADATA response with the
    /// entries asked for (NIL for one named that does not exist), those
    /// larger than MAXSIZE left out and counted in `OK [METADATA
    /// LONGENTRIES n]`.
    pub(super) async fn get_metadata(&mut self, get: GetMetadata, out: &mut Out<'_>) -> CmdResult {
        let account = self.account()?.to_string();
        let target = self.metadata_target(get.mailbox.as_ref()).await?;
        let stored = match self.ctx.store.metadata(account, target).await {
            Ok(s) => s,
            Err(StoreError::NotFound(_)) => {
                return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
            }
            Err(e) => return Err(e.into()),
        };
        let asked: Vec<String> = get.entries.iter().map(|e| e.to_lowercase()).collect();
        let mut entries: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut longest: Option<u64> = None;
        for (name, value) in &stored {
            if !asked.iter().any(|a| wanted(name, a, get.depth)) {
                continue;
            }
            let size = value.len() as u64;
            if get.max_size.is_some_and(|max| size > max) {
                longest = Some(longest.map_or(size, |l| l.max(size)));
                continue;
            }
            entries.push((name.clone(), Some(value.clone())));
        }
        // An entry asked for that has nothing to show is NIL (as Dovecot
        // and Cyrus answer), so the client learns it is unset.
        for a in &asked {
            let any = stored.iter().any(|(n, _)| wanted(n, a, get.depth));
            if !any && !entries.iter().any(|(n, _)| n == a) {
                entries.push((a.clone(), None));
            }
        }
        entries.sort_by(|x, y| x.0.cmp(&y.0));
        out.data(Data::Metadata {
            mailbox: get
                .mailbox
                .as_ref()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            entries,
        });
        match longest {
            Some(n) => Ok((
                Some(Code::Metadata(MetadataCode::LongEntries(n))),
                "GETMETADATA completed".into(),
            )),
            None => done("GETMETADATA completed"),
        }
    }

    /// SETMETADATA (RFC 5464 4.3): every entry or none.
    pub(super) async fn set_metadata(&mut self, set: SetMetadata) -> CmdResult {
        let account = self.account()?.to_string();
        let max_size = self.ctx.config.metadata_max_size;
        if set
            .entries
            .iter()
            .any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > max_size))
        {
            return Err(ImapError::no(
                Some(Code::Metadata(MetadataCode::MaxSize(max_size as u64))),
                "value too large",
            ));
        }
        let target = self.metadata_target(set.mailbox.as_ref()).await?;
        let max = self.ctx.config.metadata_max_entries;
        match self
            .ctx
            .store
            .set_metadata(account, target, set.entries, max)
            .await
        {
            Ok(()) => done("SETMETADATA completed"),
            Err(StoreError::Limit(_)) => Err(ImapError::no(
                Some(Code::Metadata(MetadataCode::TooMany)),
                "too many entries",
            )),
            Err(StoreError::NotFound(_)) => {
                Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::testkit::{ALICE, Kit, cmd, raw};

    #[test]
    fn depth_selects_children_and_descendants() {
        assert!(wanted("/shared/comment", "/shared/comment", Depth::Zero));
        assert!(!wanted("/shared/a/b", "/shared", Depth::Zero));
        assert!(wanted("/shared/a", "/shared", Depth::One));
        assert!(!wanted("/shared/a/b", "/shared", Depth::One));
        assert!(wanted("/shared/a/b", "/shared", Depth::Infinity));
        assert!(!wanted("/sharedx/a", "/shared", Depth::Infinity));
    }

    #[tokio::test]
    async fn limits_answer_maxsize_and_toomany() {
        let kit = Kit::with(|c| {
            c.metadata_max_size = 8;
            c.metadata_max_entries = 2;
        });
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "SETMETADATA \"\" (/private/a \"123456789\")").await;
        assert!(r.tagged.starts_with("t NO [METADATA MAXSIZE 8]"), "{r:?}");
        cmd(
            &mut s,
            "SETMETADATA \"\" (/private/a \"1\" /private/b \"2\")",
        )
        .await
        .assert_ok();
        let r = cmd(&mut s, "SETMETADATA \"\" (/private/c \"3\")").await;
        assert!(r.tagged.starts_with("t NO [METADATA TOOMANY]"), "{r:?}");
        // Nothing of a refused SETMETADATA was kept.
        let r = cmd(&mut s, "GETMETADATA \"\" (/private/c)").await;
        assert!(r.has("* METADATA \"\" (/private/c NIL)"), "{r:?}");
        // A literal value, then MAXSIZE leaves it out (LONGENTRIES).
        raw(
            &mut s,
            b"t SETMETADATA \"\" (/private/a {5}\r\nab\r\nc)\r\n",
        )
        .await
        .assert_ok();
        let r = cmd(
            &mut s,
            "GETMETADATA (MAXSIZE 2) \"\" (/private/a /private/b)",
        )
        .await;
        assert!(r.has("* METADATA \"\" (/private/b \"2\")"), "{r:?}");
        assert!(
            r.tagged.starts_with("t OK [METADATA LONGENTRIES 5]"),
            "{r:?}"
        );
        let r = cmd(&mut s, "GETMETADATA \"\" /private/a").await;
        assert!(
            r.has("* METADATA \"\" (/private/a {5}\r\nab\r\nc)"),
            "{r:?}"
        );
    }
}

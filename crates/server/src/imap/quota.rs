//! QUOTA (RFC 9208): GETQUOTA and GETQUOTAROOT. APPEND and COPY hand the
//! user's limits to the store, which checks them in the write's
//! transaction. Each user has one quota root, `""`, over all their
//! mailboxes (see [`crate::quota`]); SETQUOTA is the administrator's
//! (`mailroom user quota`), so a client gets `NO [NOPERM]`.

use proto_imap::{Code, Data, Mailbox};
use store::Usage;

use super::session::{CmdResult, ImapError, Out, Session, done};
use crate::quota::Limits;

/// The one quota root of every user (RFC 9208 3.2: the root's name is
/// the server's choice).
const ROOT: &str = "";

/// RFC 9208 5.1: STORAGE is in units of 1024 octets.
fn kib(octets: u64) -> u64 {
    octets.div_ceil(1024)
}

impl Session {
    /// The logged-in user's limits and usage.
    pub(super) async fn quota_status(&self) -> Result<(Limits, Usage), ImapError> {
        let account = self.account()?;
        Ok(self
            .ctx
            .quota
            .status(self.ctx.store.as_ref(), account)
            .await?)
    }

    fn quota_data(limits: Limits, usage: Usage) -> Data {
        // RFC 9208 4.2: only the resources that are limited are listed.
        let mut resources = Vec::new();
        if limits.storage != 0 {
            resources.push(("STORAGE".into(), kib(usage.bytes), kib(limits.storage)));
        }
        if limits.messages != 0 {
            resources.push(("MESSAGE".into(), usage.messages, limits.messages));
        }
        Data::Quota {
            root: ROOT.into(),
            resources,
        }
    }

    pub(super) async fn get_quota(&self, root: &str, out: &mut Out<'_>) -> CmdResult {
        if root != ROOT {
            return Err(ImapError::no(Some(Code::NonExistent), "no such quota root"));
        }
        let (limits, usage) = self.quota_status().await?;
        out.data(Self::quota_data(limits, usage));
        done("GETQUOTA completed")
    }

    pub(super) async fn get_quota_root(&self, mailbox: &Mailbox, out: &mut Out<'_>) -> CmdResult {
        let account = self.account()?.to_string();
        if self
            .ctx
            .store
            .mailbox(account, mailbox.as_str().to_string())
            .await?
            .is_none()
        {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        }
        let (limits, usage) = self.quota_status().await?;
        out.data(Data::QuotaRoot {
            mailbox: mailbox.as_str().to_string(),
            roots: vec![ROOT.into()],
        });
        out.data(Self::quota_data(limits, usage));
        done("GETQUOTAROOT completed")
    }
}

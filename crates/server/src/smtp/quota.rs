//! Quota over SMTP (RFC 9208 through RFC 5321's replies; issue 15): a
//! recipient at or over a limit is refused at RCPT with `452 4.2.2`
//! (temporary: the user may make room), as is one a declared SIZE= would
//! put over; at the end of DATA the message may overshoot (SMTP has one
//! reply for all recipients), except that a message larger than a
//! recipient's whole storage limit can never fit: `552 5.2.2`.

use proto_smtp::Reply;

use super::session::{Session, local_error, reply};

impl Session {
    /// The RCPT refusal for `accounts` (the recipient's mailbox accounts),
    /// if any of them is full; `size` is MAIL's SIZE=.
    pub(crate) async fn quota_at_rcpt(
        &self,
        accounts: &[String],
        size: Option<u64>,
    ) -> Option<Reply> {
        for account in accounts {
            let status = self
                .ctx
                .quota
                .status(self.ctx.store.as_ref(), account)
                .await;
            let Ok((limits, usage)) = status else {
                return Some(local_error());
            };
            if size.is_some_and(|s| limits.storage != 0 && s > limits.storage) {
                return Some(too_big_for_mailbox());
            }
            if limits.reached(usage) || size.is_some_and(|s| !limits.admits(usage, s, 1)) {
                tracing::info!(%account, "recipient over quota");
                return Some(reply(452, 4, 2, 2, "Mailbox full"));
            }
        }
        None
    }

    /// The end-of-DATA refusal: a message of `size` octets larger than a
    /// local recipient's whole storage limit.
    pub(crate) fn quota_at_data(&self, accounts: &[String], size: u64) -> Option<Reply> {
        for account in accounts {
            let limits = self.ctx.quota.limits(account);
            if limits.storage != 0 && size > limits.storage {
                return Some(too_big_for_mailbox());
            }
        }
        None
    }
}

/// RFC 3463 5.2.2: larger than the mailbox can ever hold.
fn too_big_for_mailbox() -> Reply {
    reply(
        552,
        5,
        2,
        2,
        "Message exceeds the recipient's storage limit",
    )
}

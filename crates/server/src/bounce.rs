//! Where DSNs go (issue 13): the original sender's address resolved
//! through the directory like a RCPT, with our own SRS addresses decoded
//! first (a bounce of mail we forwarded goes to the sender it came from).
//! Used by the outbound worker and by SMTP's "delivered" reports.

use std::sync::Arc;

use delivery::srs::{self, Srs};
use delivery::worker::{BounceFuture, BounceRoute};
use delivery::{RemoteTarget, Targets};
use directory::{Directory, Resolution};

/// SRS1 then SRS0: the most decoding steps one address needs.
const MAX_SRS_STEPS: usize = 2;

/// DSN routing through the directory.
pub struct DirectoryBounces {
    pub directory: Arc<dyn Directory>,
    pub srs: Option<Arc<Srs>>,
}

impl DirectoryBounces {
    /// The targets of `address`; empty when there are none (unknown, or
    /// an SRS address of ours that does not verify).
    pub async fn targets(&self, address: &str) -> Targets {
        let mut address = address.to_string();
        // SRS1 decodes to the first forwarder's SRS0 address (ours again
        // when we were the first forwarder), SRS0 to the original sender.
        for _ in 0..MAX_SRS_STEPS {
            let Some((local, domain)) = address.rsplit_once('@') else {
                break;
            };
            if !(srs::is_srs(local) && self.directory.is_local_domain(domain)) {
                break;
            }
            let Some(s) = &self.srs else {
                return Targets::default();
            };
            match s.reverse(local, srs::today()) {
                Ok(a) => address = a,
                Err(e) => {
                    tracing::info!(?e, "DSN to an SRS address that does not verify");
                    return Targets::default();
                }
            }
        }
        let mut t = Targets::default();
        match self.directory.resolve(&address).await {
            Ok(Resolution::NotLocal) => t.add_remote(RemoteTarget::direct(address)),
            Ok(
                Resolution::Deliver { local, remote } | Resolution::Forward { local, remote, .. },
            ) => t.add(&local, &remote),
            Ok(Resolution::Unknown | Resolution::Refuse { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "cannot resolve a DSN's recipient"),
        }
        t
    }
}

impl BounceRoute for DirectoryBounces {
    fn resolve<'a>(&'a self, address: &'a str) -> BounceFuture<'a> {
        Box::pin(self.targets(address))
    }

    fn postmaster(&self) -> String {
        format!("postmaster@{}", self.directory.primary_domain())
    }
}

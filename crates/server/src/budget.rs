//! A server-wide budget for message data held in memory (SPEC 8: no input
//! grows without bound). When the budget is spent, a message is refused
//! with a temporary error (SMTP 452 4.3.1) instead of the server running
//! out of memory under many concurrent large messages.
//!
//! A message is admitted whole or not at all, at DATA (before the 354) or
//! at its first BDAT chunk: the session reserves the size the client
//! declared with SIZE (RFC 1870), else `max_message_size`. Growing the
//! reservation as data arrived instead let six concurrent 20 MB senders
//! against a 64 MB budget each take a share and most be refused after
//! sending everything; admitting whole means the budget is held only by
//! messages that can finish, and the others are told at once to retry.
//!
//! Reserving `max_message_size` for a message without SIZE is the price of
//! never refusing it after 354; the alternative, reserving in chunks and
//! waiting for budget mid-message, can deadlock senders that each hold part
//! of it. Every mainstream MTA sends SIZE when it is advertised, so few
//! messages pay it. A client that sends more than it declared grows its
//! reservation as before and is the only one that may be refused at the
//! end of the data.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are made in units of this many octets.
pub const BUDGET_UNIT: usize = 64 * 1024;
/// Default budget: 512 MiB of message data in flight at once.
pub const DEFAULT_INFLIGHT_BYTES: usize = 512 * 1024 * 1024;

/// The shared budget. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("free_units", &self.sem.available_permits())
            .finish()
    }
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            sem: Arc::new(Semaphore::new(units)),
        }
    }

    /// An empty reservation against this budget.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            sem: Arc::clone(&self.sem),
            held: None,
        }
    }
}

/// What one session holds; returned to the budget on `release` or drop.
pub struct Reservation {
    sem: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Grows the reservation to cover `bytes`; false when the budget cannot
    /// (the reservation keeps what it had).
    pub fn cover(&mut self, bytes: usize) -> bool {
        let needed = bytes.div_ceil(BUDGET_UNIT);
        let have = self.held.as_ref().map_or(0, |p| p.num_permits());
        if needed <= have {
            return true;
        }
        let Ok(more) = u32::try_from(needed - have) else {
            return false;
        };
        match Arc::clone(&self.sem).try_acquire_many_owned(more) {
            Ok(p) => {
                match &mut self.held {
                    Some(held) => held.merge(p),
                    None => self.held = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }

    pub fn release(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_return_it() {
        let budget = MemoryBudget::new(4 * BUDGET_UNIT);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert!(a.cover(3 * BUDGET_UNIT));
        assert!(a.cover(3 * BUDGET_UNIT - 1), "shrinking needs nothing");
        assert!(!b.cover(2 * BUDGET_UNIT));
        assert!(b.cover(1));
        a.release();
        assert!(b.cover(4 * BUDGET_UNIT));
        drop(b);
        assert!(a.cover(4 * BUDGET_UNIT));
    }
}

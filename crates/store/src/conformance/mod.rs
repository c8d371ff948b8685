//! The store's conformance suite: every behaviour of the [`Store`] trait
//! that is not about one backend's storage, written once against
//! `Arc<dyn Store>` and run on every backend (STYLE.md, "Store").
//!
//! A backend's crate instantiates it in its tests with
//! [`store_conformance!`](crate::store_conformance), given an expression
//! that makes a fresh, empty [`Backend`]; with the `conformance` feature
//! the module is public for crates other than this one (a PostgreSQL
//! backend). The SQLite instantiation is in `tests.rs`; what only SQLite
//! has (body rows and reference counts, the writer's batches, a second OS
//! process, schema and durability pragmas) is tested there and in the
//! other `tests_*.rs` files.
//!
//! Adding a test: write `pub async fn name(backend: &dyn Backend)` in the
//! file of its area (one file per area: `delivery`, `mailboxes`, `feed`,
//! `imports`, `moves`, `queue`, `targets`, `conditions`, `appends`,
//! `metadata`, `threads`, `urlauth`, `spooled`, `body_meta`, `index`, or a new one
//! declared below) and add its name to that area's list in
//! [`store_conformance!`].

pub mod appends;
pub mod body_meta;
pub mod conditions;
pub mod delivery;
pub mod feed;
pub mod imports;
pub mod index;
pub mod mailboxes;
pub mod metadata;
pub mod moves;
pub mod queue;
pub mod spooled;
pub mod targets;
pub mod threads;
pub mod urlauth;

use std::sync::Arc;

use crate::{Delivery, LocalTarget, MailboxInfo, Store};

/// One place where a store's data lives (a data directory, a database),
/// empty when the test starts.
pub trait Backend: Send + Sync {
    /// A handle on the store. Every call opens another handle on the same
    /// data, as another process or node would: writes of one are read by
    /// the others, and their changes reach the others' feeds. Dropping the
    /// last handle closes it (everything acknowledged stays).
    fn open(&self) -> Arc<dyn Store>;
}

/// A delivery of `raw` to the INBOX of each account.
pub fn local(accounts: &[&str], raw: &[u8]) -> Delivery {
    Delivery {
        local_raw: Some(raw.to_vec()),
        local: accounts.iter().map(|a| LocalTarget::inbox(*a)).collect(),
        outbound: None,
        internal_date: 1_700_000_000,
    }
}

/// The account's INBOX, which must exist.
pub async fn inbox(store: &dyn Store, account: &str) -> MailboxInfo {
    store
        .mailbox(account.into(), "inbox".into())
        .await
        .expect("mailbox")
        .expect("INBOX exists")
}

/// Instantiates every conformance test as a `#[tokio::test]` (on a
/// two-worker runtime) for the backend that `$backend` makes; it is
/// evaluated once per test inside a module per area, so name things in it
/// by absolute path (`crate::tests::sqlite()`). The caller needs tokio.
///
/// `store_conformance!(backend, unless skip)` returns from each test
/// before making the backend when `skip` is true (a backend that needs an
/// external server, skipped only where the environment asks to).
#[macro_export]
macro_rules! store_conformance {
    ($backend:expr) => {
        $crate::store_conformance!($backend, unless false);
    };
    ($backend:expr, unless $skip:expr) => {
        $crate::store_conformance!(@areas $backend, $skip;
            delivery {
                deliver_to_three_accounts_stores_one_body,
                usage_counts_every_entry_of_the_account,
                uids_strictly_ascending_never_reused,
                reopen_keeps_everything,
                outbound_is_queued_in_same_transaction,
                expunge_gcs_unreferenced_body,
            }
            mailboxes {
                recreated_mailbox_gets_new_uidvalidity,
                rename_inbox_moves_messages,
                flags_roundtrip_and_modseq_increases,
            }
            feed {
                change_feed_reports_append_flags_expunge,
                deleting_an_account_publishes_account_deleted_to_other_stores,
                a_second_handle_sees_writes_and_their_changes,
            }
            moves {
                move_shares_bodies_and_leaves_tombstones,
                move_reports_append_and_expunge_on_the_feed,
                move_survives_reopen,
                move_to_a_missing_mailbox_is_not_found,
                messages_range_reads_only_the_range,
                read_bodies_reads_many_at_once_and_marks_missing_ones,
            }
            queue {
                a_claim_leases_rows_and_an_expired_lease_is_claimed_again,
                a_renewed_claim_holds_its_rows_past_the_first_lease,
                claims_of_a_stopped_sender_are_released_at_start,
                complete_defer_fail_retry_and_delete,
                queue_changes_reach_the_feed,
                dsn_parameters_are_kept_per_row_and_claimed_with_it,
                settling_removes_rows_marks_warnings_and_delivers_dsns_together,
                a_settle_that_fails_keeps_the_rows,
                deliver_all_stores_every_delivery_in_one_commit,
            }
            targets {
                a_target_names_its_mailbox_and_flags,
                a_missing_mailbox_means_inbox,
            }
            imports {
                an_import_with_a_known_digest_appends_nothing,
                a_spooled_import_is_stored_whole_and_dedups_by_digest,
            }
            conditions {
                unchanged_since_leaves_newer_entries_alone,
                append_within_refuses_past_the_limit_and_writes_nothing,
                concurrent_appends_never_pass_the_quota_together,
                copy_within_copies_all_or_nothing,
                trimmed_tombstones_make_older_changes_say_so,
            }
            appends {
                append_many_stores_every_message_in_order,
                a_failure_in_the_middle_of_append_many_stores_nothing,
                save_dates_are_when_each_entry_was_made,
                append_many_within_a_quota_stores_all_or_none,
            }
            metadata {
                metadata_is_kept_per_server_and_mailbox_and_nil_deletes,
                metadata_past_the_limit_writes_nothing,
                metadata_follows_rename_and_goes_with_delete,
            }
            threads {
                replies_join_their_thread_and_copies_keep_it,
            }
            urlauth {
                urlauth_keys_are_made_once_reset_and_go_with_the_mailbox,
            }
            spooled {
                a_spooled_append_is_stored_whole_and_read_back_in_ranges,
                a_spooled_delivery_ends_both_copies_with_the_tail,
                a_delivery_spooled_apart_gives_each_copy_its_own_tail,
            }
            body_meta {
                body_meta_is_kept_per_body_replaced_and_goes_with_it,
            }
            index {
                mailbox_index_has_every_entry_and_its_flags_once_per_set,
                mailbox_index_of_a_big_mailbox_is_whole_and_ascending,
            }
        );
    };
    (@areas $backend:expr, $skip:expr; $($area:ident { $($name:ident),* $(,)? })*) => {
        $(
            mod $area {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if $skip {
                            return;
                        }
                        let backend = $backend;
                        $crate::conformance::$area::$name(&backend).await;
                    }
                )*
            }
        )*
    };
}

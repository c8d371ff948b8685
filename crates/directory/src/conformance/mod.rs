//! The directory's conformance suite: every behaviour of the
//! [`Directory`] trait that is not about one backend's storage, written
//! once against `Arc<dyn Directory>` and run on every backend (STYLE.md,
//! "Store").
//!
//! A backend's crate instantiates it in its tests with
//! [`directory_conformance!`](crate::directory_conformance), given an
//! expression that makes a fresh, empty [`Backend`]; with the
//! `conformance` feature the module is public for other crates. The SQLite
//! instantiation is in `sqlite.rs`; what only SQLite has (query plans,
//! rows written by hand, schema migrations) stays in the unit tests of
//! the other modules.
//!
//! Adding a test: `pub async fn name(backend: &dyn Backend)` in the file
//! of its area, and its name in that area's list in the macro.

pub mod admin;
pub mod open;
pub mod people;
pub mod resolve;
pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{DEFAULT_SCRAM_ITERATIONS, Directory, DirectoryConfig, DirectoryError, Resolution};

/// One place where a directory's data lives, empty when the test starts.
pub trait Backend: Send + Sync {
    /// A handle on the directory with `config`. Every call opens another
    /// handle on the same data, as another process (the CLI) or node
    /// would: a write through one is read by the others at once.
    fn open(&self, config: DirectoryConfig) -> Result<Arc<dyn Directory>, DirectoryError>;
}

/// `domains` with the cheapest argon2 costs, so tests are fast.
pub fn config(domains: &[&str]) -> DirectoryConfig {
    DirectoryConfig {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        catch_all: BTreeMap::new(),
        argon2_m_cost: 8,
        argon2_t_cost: 1,
        argon2_p_cost: 1,
        max_concurrent_hashes: 2,
        scram_iterations: DEFAULT_SCRAM_ITERATIONS,
        scram: true,
    }
}

/// An open directory of a test.
pub struct Opened {
    pub dir: Arc<dyn Directory>,
}

pub fn open_with(backend: &dyn Backend, config: DirectoryConfig) -> Opened {
    Opened {
        dir: backend.open(config).expect("open the directory"),
    }
}

pub fn open(backend: &dyn Backend, domains: &[&str]) -> Opened {
    open_with(backend, config(domains))
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn deliver(local: &[&str], remote: &[&str]) -> Resolution {
    Resolution::Deliver {
        local: s(local),
        remote: s(remote),
    }
}

/// Instantiates every conformance test as a `#[tokio::test]` (on a
/// two-worker runtime) for the backend that `$backend` makes; it is
/// evaluated inside a module per area, so name things in it by absolute
/// path. The caller needs tokio.
///
/// `directory_conformance!(backend, unless skip)` returns from each test
/// before making the backend when `skip` is true (a backend that needs an
/// external server, skipped only where the environment asks to).
#[macro_export]
macro_rules! directory_conformance {
    ($backend:expr) => {
        $crate::directory_conformance!($backend, unless false);
    };
    ($backend:expr, unless $skip:expr) => {
        $crate::directory_conformance!(@areas $backend, $skip;
            open {
                domains_are_lowercased_and_first_is_primary,
                empty_domain_list_is_refused,
                catch_all_in_foreign_domain_is_refused,
                second_connection_sees_changes,
            }
            resolve {
                unknown_and_not_local,
                plus_detail_delivers_to_base_user,
                alias_expands_to_targets,
                user_reached_directly_and_via_list_gets_one_copy,
                deep_nesting_is_cut_at_the_bound,
                postmaster_exists_in_every_domain,
                catch_all_takes_unknown_addresses,
                forward_gives_251_target,
                forward_keep_includes_user,
                forward_refuse_gives_551,
                forwarded_user_inside_a_list_contributes_its_target,
                remote_local_part_keeps_case,
                resolve_sees_every_change_at_once,
            }
            admin {
                add_user_in_unknown_domain_fails,
                add_user_returns_canonical_and_refuses_duplicates,
                quota_defaults_to_none_and_is_set_per_user,
                user_lookup_is_case_insensitive,
                user_alias_and_list_exclude_each_other,
                alias_add_on_existing_adds_targets,
                del_alias_removes_targets_then_whole,
                list_members_in_insertion_order,
                forward_needs_an_existing_user_and_goes_with_it,
                full_name_with_line_break_is_refused,
                alias_cycle_is_refused_at_add_and_nothing_is_stored,
                dangling_local_target_is_a_warning_not_an_error,
            }
            people {
                vrfy_folds_unicode_case_in_names_and_local_parts,
                vrfy_by_full_name_and_local_part,
                vrfy_ambiguous_returns_all,
                expn_only_for_lists_with_full_names,
                find_login_bare_local_part_rules,
                authenticate_wrong_password_is_none,
                alias_cannot_log_in,
            }
            scram {
                add_user_writes_keys_that_the_password_matches,
                scram_iterations_come_from_the_config_and_have_a_floor,
                set_password_replaces_the_keys,
                scram_keys_resolve_logins_like_authenticate,
                unknown_names_get_stable_fake_keys_that_no_password_matches,
                scram_off_writes_no_keys_and_clears_them_on_passwd,
                fill_scram_keys_only_where_missing,
                server_nonces_differ,
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

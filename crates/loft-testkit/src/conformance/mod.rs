//! The storage conformance suite: one story of behaviours every [`Store`] must show, run on
//! each backend (Atuin's `tests-database` is the model).
//!
//! Each case is a `pub async fn case(store: Arc<dyn Store>)` that gets a fresh, empty store.
//! Most drive the use cases through [`loft_core::service::Loft`] (what the doors call), so a
//! store is judged by what a user sees; where the contract is about the store itself (audit
//! filters, `NotFound` codes, transactions) a case calls the store directly.
//!
//! A store crate runs the whole suite with one line in `tests/conformance.rs`:
//!
//! ```text
//! loft_testkit::conformance_tests!(setup());
//! // where `async fn setup() -> Option<(Arc<dyn Store>, Cleanup)>` opens a fresh store
//! ```
//!
//! which expands to one `#[test]` per case, so that nextest runs and reports every case on
//! its own. Each test builds a multi-threaded tokio runtime with two workers (what
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` does, without making every
//! caller depend on tokio), runs the case in a task, closes the store and runs the cleanup even
//! when the case panics, then re-raises the panic. `setup` may return `None` to skip a backend
//! that is not available (the PostgreSQL fixture only does so outside CI, loudly).

#![allow(
    clippy::too_many_lines,
    clippy::similar_names,
    clippy::many_single_char_names,
    reason = "test stories read top to bottom; short names like `a`/`aa` pair an identity with its actor"
)]

mod approvals_console;
mod attachments;
mod audit;
mod caps;
mod console;
mod contacts;
mod delivery;
mod domains;
mod drafts;
mod events;
mod identities;
mod inbound;
mod jobs;
mod keys;
mod mail;
mod mailbox;
mod oversight;
mod robustness;
mod rules;
mod scheduled;
mod search;
mod security;
mod store;
mod vault;
mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use loft_core::store::Store;

pub use approvals_console::*;
pub use attachments::*;
pub use audit::*;
pub use caps::*;
pub use console::*;
pub use contacts::*;
pub use delivery::*;
pub use domains::*;
pub use drafts::*;
pub use events::*;
pub use identities::*;
pub use inbound::*;
pub use jobs::*;
pub use keys::*;
pub use mail::*;
pub use mailbox::*;
pub use oversight::*;
pub use robustness::*;
pub use rules::*;
pub use scheduled::*;
pub use search::*;
pub use security::*;
pub use store::*;
pub use vault::*;
pub use webhooks::*;

/// What a fixture hands the suite: a fresh store, and what to do when the case is over.
pub type Fixture = Option<(Arc<dyn Store>, Cleanup)>;

/// Work to do after a case: drop a temporary directory, drop a database.
pub struct Cleanup(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Cleanup {
    /// Nothing to clean up.
    pub fn none() -> Self {
        Self(None)
    }

    /// Runs `fut` after the case.
    pub fn new(fut: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Some(Box::pin(fut)))
    }

    /// Keeps `value` alive until the case is over, then drops it (a `TempDir`, say).
    pub fn keep<T: Send + 'static>(value: T) -> Self {
        Self::new(async move { drop(value) })
    }

    pub async fn run(self) {
        if let Some(fut) = self.0 {
            fut.await;
        }
    }
}

/// A case that runs longer than this is taken to be stuck (a lock never released).
pub const CASE_TIMEOUT: Duration = Duration::from_mins(5);

/// Runs one case on the store `setup` produces; see the module docs.
pub fn run_case<S, C, F>(setup: S, case: C)
where
    S: Future<Output = Fixture>,
    C: FnOnce(Arc<dyn Store>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the test runtime");
    rt.block_on(async move {
        let Some((store, cleanup)) = setup.await else {
            return;
        };
        let handle = store.clone();
        let outcome = tokio::time::timeout(CASE_TIMEOUT, tokio::spawn(case(store))).await;
        if outcome.is_ok() {
            // The case is over and dropped its handles; a stuck case may still hold
            // connections, so only a finished one is closed gracefully.
            handle.close().await;
        }
        drop(handle);
        cleanup.run().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the case's task failed: {e}"),
            Err(elapsed) => panic!(
                "the case did not finish ({elapsed} after {} s): a transaction or lock is probably never released",
                CASE_TIMEOUT.as_secs()
            ),
        }
    });
}

/// Expands to one `#[test]` per conformance case, each on the fixture `$setup` (an expression
/// evaluated afresh per test, producing a future of [`Fixture`]).
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@cases ($setup)
            store_fresh_is_empty,
            store_missing_things_are_not_found,
            store_find_key_returns_revoked_keys,
            identity_create_and_get,
            identity_list_visibility,
            identity_list_pagination,
            identity_local_part_conflict_leaves_nothing,
            identity_update,
            identity_store_revocation_and_addresses,
            auth_valid_key,
            auth_unknown_key,
            auth_malformed_key,
            auth_revoked_key,
            auth_expired_key,
            scope_missing_mail_send,
            key_minting_cannot_escalate_scopes,
            key_minting_cannot_escalate_expiry,
            key_rotation,
            key_store_rotate_and_revoke,
            security_narrow_key_cannot_rotate_the_primary_key,
            security_minted_keys_never_outlive_their_minter,
            security_key_management_needs_its_scope,
            security_bad_key_flood_is_limited_and_bounded,
            security_per_key_rate_limit,
            security_minting_rule_holds_on_random_sequences,
            quota_usage_is_counted,
            robustness_nul_bytes_are_refused_alike,
            jobs_claim_lease_and_complete,
            jobs_expired_lease_is_claimed_again,
            jobs_retry_then_give_up,
            jobs_two_claimers_complete_each_job_once,
            security_quotas_refuse_and_leave_nothing,
            delegation_revoke_cascades,
            whoami_chain,
            mail_send_local_and_remote,
            mail_bcc_hidden_from_recipients,
            mail_unknown_local_recipient_stores_nothing,
            mail_send_to_self,
            mail_outside_recipients_refused_without_outbound,
            mail_duplicate_recipients_collapse,
            mail_label_cap,
            mail_wait_pages_oldest_first,
            mail_reply_threads_in_both_mailboxes,
            mail_reply_all,
            mail_foreign_message_is_not_found,
            mail_list_filters,
            mail_cursor_pagination,
            mail_store_labels_cursors_and_limits,
            mail_label_list_pages_within_one_mailbox,
            mail_thread_list_by_a_common_label,
            mail_labels,
            mail_reading_marks_read,
            mail_list_shows_each_write_at_once,
            mail_threads_list_and_get,
            mail_raw_is_rfc5322,
            mail_content_round_trips,
            audit_actions_recorded,
            audit_identity_sees_own_rows_only,
            audit_verify_after_story,
            audit_append_round_trip_and_filters,
            audit_pagination,
            audit_concurrent_sends,
            vault_store_list_get_update_delete,
            vault_isolation,
            vault_reveal_needs_scope,
            vault_totp_codes,
            vault_backup_codes_are_popped_atomically,
            vault_tampered_rows_fail,
            vault_key_check_and_rotation,
            vault_widening_needs_reveal,
            vault_short_secrets_are_refused,
            oversight_gated_send_life_cycle,
            oversight_reject_with_reason,
            oversight_expiry,
            oversight_wait_reports_decisions,
            oversight_separation_of_duties,
            oversight_modes,
            oversight_exfiltration_guard,
            oversight_concurrent_approvals_send_once,
            oversight_kill_switches,
            oversight_idempotent_sends,
            oversight_policy_holds_on_random_sequences,
            oversight_gated_all_holds_incoming_mail,
            oversight_guard_and_internal_mail_settings,
            drafts_life_cycle,
            drafts_bounds,
            drafts_isolation_and_scopes,
            drafts_reply_threads,
            drafts_send_once_concurrently,
            drafts_gate_and_quota,
            drafts_hold_attachments_and_send_them,
            scheduled_send_waits_then_goes_once,
            scheduled_gated_approve_then_waits,
            scheduled_cancel_and_reschedule,
            scheduled_cancel_races_release,
            scheduled_survives_restart_and_runs_once_on_two_nodes,
            scheduled_release_waits_for_kill_switches,
            rules_store_add_list_remove,
            rules_management_is_for_the_operator,
            rules_block_and_allow_lists_refuse_naming_the_rule,
            rules_reply_rules_bind_replies,
            rules_receive_rules_refuse_senders,
            rules_hold_holds_in_autonomous_mode,
            search_finds_words_in_every_field,
            search_is_scoped_to_the_callers_mailbox,
            search_pages_and_refuses_bad_queries,
            mailbox_forward_quotes_and_threads,
            mailbox_operator_inspects_read_only,
            mailbox_forward_is_gated_like_a_send,
            contacts_join_mail_and_address_book,
            contacts_do_not_open_the_gate,
            contacts_are_private_and_checked,
            contacts_in_message_views,
            mailbox_archive_trash_and_restore,
            mailbox_thread_changes_every_copy,
            mailbox_delete_for_ever,
            caps_hourly_cap_refuses_then_allows,
            caps_daily_cap,
            caps_new_recipients_cap,
            caps_instance_cap_across_identities,
            whoami_shows_each_change_and_the_clock,
            caps_first_contact_hold,
            caps_scheduled_release_counts,
            caps_draft_send_counts,
            caps_first_contact_with_rule_hold,
            oversight_reviewer_edits_held_mail,
            oversight_edit_after_decision_is_refused,
            oversight_concurrent_edit_and_approve_agree,
            oversight_edit_audit_redacts_vault_secrets,
            oversight_mode_requests,
            oversight_edit_checks_rules_and_first_contact,
            events_follow_mail_and_decisions,
            events_are_private_and_checked,
            events_wake_their_waiters,
            events_idle_waiters_cost_no_queries,
            events_monitored_mail_feeds_reviewers,
            inbound_mail_is_stored_threaded_and_audited,
            inbound_refusals_store_nothing,
            inbound_codes_and_links_are_found,
            domains_add_list_show_check_remove,
            domains_are_hosted_for_inbound,
            inbound_dkim_verdicts,
            inbound_dmarc_policies,
            webhooks_deliver_in_order_and_retry,
            webhooks_disable_after_a_failure_streak,
            webhooks_are_private,
            webhooks_rotate_secrets_and_rewrap,
            webhooks_store_contract,
            webhooks_delivery_log_is_bounded,
            webhooks_follow_the_callers_scopes_and_the_owners_pause,
            delivery_outcomes_bounces_and_suppression,
            delivery_held_mail_waits_for_approval,
            delivery_suppressed_meanwhile_bounces_without_a_try,
            attachments_reach_local_recipients_intact,
            attachments_refusals_write_nothing,
            attachments_count_in_the_quota,
            attachments_are_read_by_the_exfiltration_guard,
            attachments_go_along_with_a_forward,
            console_sessions_invites_and_passwords,
            approvals_context_is_the_held_mails_own_thread,
            approvals_expired_console_sessions_are_purged_by_the_runner,
            approvals_held_mail_notices_by_mail,
            approvals_held_mail_notices_to_an_outside_address,
        );
    };
    (@cases ($setup:expr) $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case($setup, $crate::conformance::$case);
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    /// Every case written in a conformance module is listed in `conformance_tests!`, and both
    /// store crates run that list: a case cannot exist without running on SQLite and
    /// PostgreSQL.
    #[test]
    fn every_case_runs_on_both_backends() {
        let modules = [
            include_str!("approvals_console.rs"),
            include_str!("attachments.rs"),
            include_str!("audit.rs"),
            include_str!("caps.rs"),
            include_str!("console.rs"),
            include_str!("contacts.rs"),
            include_str!("domains.rs"),
            include_str!("delivery.rs"),
            include_str!("drafts.rs"),
            include_str!("events.rs"),
            include_str!("identities.rs"),
            include_str!("inbound.rs"),
            include_str!("jobs.rs"),
            include_str!("keys.rs"),
            include_str!("mail.rs"),
            include_str!("mailbox.rs"),
            include_str!("oversight.rs"),
            include_str!("robustness.rs"),
            include_str!("scheduled.rs"),
            include_str!("rules.rs"),
            include_str!("search.rs"),
            include_str!("security.rs"),
            include_str!("store.rs"),
            include_str!("vault.rs"),
        ];
        let this = include_str!("mod.rs");
        let macro_body = &this[this.find("macro_rules! conformance_tests").unwrap()..];
        let listed: Vec<&str> = macro_body
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        let mut cases = Vec::new();
        for src in modules {
            for line in src.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ")
                    && let Some((name, args)) = rest.split_once('(')
                    && args.starts_with("store: Arc<dyn Store>")
                {
                    cases.push(name);
                }
            }
        }
        assert!(
            cases.len() > 50,
            "found only {} cases: is the pattern still right?",
            cases.len()
        );
        let missing: Vec<_> = cases.iter().filter(|c| !listed.contains(c)).collect();
        assert!(missing.is_empty(), "cases not in conformance_tests!: {missing:?}");
        for runner in [
            include_str!("../../../loft-store-sqlite/tests/conformance.rs"),
            include_str!("../../../loft-store-postgres/tests/conformance.rs"),
        ] {
            assert!(runner.contains("loft_testkit::conformance_tests!("), "{runner}");
        }
    }
}

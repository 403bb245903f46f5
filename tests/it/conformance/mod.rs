//! The storage conformance suite: every backend and wrapper must show the same behaviour through
//! the ports. Each behaviour is an `async fn` taking `Arc<dyn Store>`, in the file of its
//! aggregate; `store_conformance_suite!` instantiates all of them for one backend, and
//! `read_cache_suite!` adds the behaviours only the read cache has (over SQLite and PostgreSQL).

mod access;
mod applied;
mod approvals;
mod changelog;
mod configs;
mod deployments;
mod fixtures;
mod flags;
pub(crate) mod notifications;
mod read_cache;
mod registry;
mod schemas;
mod secrets;
mod strategies;

use std::sync::Arc;

use summit_config::core::ports::Store;
use summit_config::store::{CachedStore, MemoryStore, PostgresStore, SqliteStore};
use tempfile::TempDir;

use crate::common;

/// A store under test and the directory its database lives in, kept alive for the whole test.
type OpenedStore = (Arc<dyn Store>, Option<TempDir>);

macro_rules! store_conformance_suite {
    ($backend:ident, $open:expr) => {
        store_conformance_suite!(@tests $backend, $open;
            configs::append_version_numbers_versions_per_config_and_head_is_latest,
            configs::append_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            configs::versions_are_listed_newest_first_and_page_with_before,
            configs::version_returns_the_stored_version,
            configs::a_write_that_would_not_get_its_expected_number_writes_nothing,
            configs::delete_marks_config_deleted_and_keeps_history,
            configs::delete_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            configs::deleting_an_absent_config_is_not_found,
            configs::append_after_delete_continues_numbering,
            configs::heads_are_ordered_by_config_id_and_include_deleted_configs,
            configs::deleting_an_absent_config_is_not_found_whatever_the_expected_version,
            schemas::append_version_with_stale_expected_schema_is_a_concurrent_modification_and_writes_nothing,
            schemas::put_schema_numbers_schema_versions_and_schema_returns_latest,
            schemas::put_schema_with_stale_expected_versions_is_a_concurrent_modification,
            schemas::schema_registered_before_the_config_exists_is_not_a_head,
            changelog::committed_writes_take_consecutive_global_revisions,
            changelog::every_committed_write_has_one_audit_record_listed_newest_first,
            changelog::flag_writes_take_the_next_global_revision_between_config_writes,
            changelog::audit_of_a_config_and_a_flag_sharing_an_id_is_kept_apart,
            applied::record_applied_upserts_per_config_environment_and_instance,
            applied::applied_state_for_a_config_that_never_existed_is_not_found,
            applied::sweeping_applied_state_deletes_only_reports_older_than_the_cutoff,
            flags::flag_versions_number_per_flag_and_head_is_latest,
            flags::append_flag_version_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            flags::flag_version_returns_the_stored_definition,
            flags::flag_versions_are_listed_newest_first_and_page_with_before,
            flags::delete_flag_marks_it_deleted_and_keeps_history,
            flags::delete_flag_with_stale_expected_live_is_a_version_conflict_and_writes_nothing,
            flags::deleting_an_absent_or_deleted_flag_is_not_found,
            flags::recreating_a_deleted_flag_takes_the_next_version,
            flags::flag_heads_are_ordered_by_key_and_include_deleted_flags,
            access::tokens_are_listed_oldest_first_and_revoked_once,
            access::a_token_whose_id_or_hash_is_taken_is_a_conflict_and_writes_nothing,
            access::revoking_an_absent_token_is_not_found_and_writes_nothing,
            access::token_records_stay_out_of_a_config_audit_that_shares_the_id,
            access::denials_are_appended_without_a_revision_and_listed_newest_first,
            approvals::change_requests_are_inserted_once_and_updated_by_compare_and_set,
            approvals::change_requests_are_listed_newest_first_and_filtered,
            approvals::a_flag_change_request_keeps_its_subject_and_definition,
            approvals::applying_an_approved_request_writes_the_version_and_marks_it_applied,
            approvals::applying_a_request_that_is_not_approved_is_a_concurrent_modification_and_writes_nothing,
            approvals::deleting_through_an_approved_request_marks_it_applied_and_only_then,
            read_cache::a_read_cache_loads_flags_and_follows_flag_changes_committed_elsewhere,
            read_cache::a_read_cache_follows_token_changes_committed_elsewhere,
            secrets::secret_versions_keep_only_sealed_values_and_a_delete_keeps_history,
            secrets::a_record_takes_a_revision_and_an_audit_record_and_writes_no_rows,
            secrets::a_write_commits_its_announcements_in_its_transaction_and_a_failed_one_none,
            registry::an_instance_write_takes_the_next_version_and_a_revision_under_its_expectation,
            registry::heartbeats_touch_live_instances_in_one_call_and_refuse_the_others,
            registry::a_heartbeat_that_changes_the_applied_map_forgets_the_metrics,
            registry::overdue_instances_are_expired_or_removed_only_as_they_were_read,
            strategies::strategy_versions_round_trip_and_a_delete_keeps_history,
            deployments::one_active_deployment_per_target_moved_only_from_the_seq_it_was_read_at,
            deployments::releases_are_kept_once_and_forgotten,
            notifications::webhooks_are_created_once_and_replaced_only_from_the_seq_read,
            notifications::fan_out_moves_the_cursor_only_from_where_it_was,
            notifications::due_deliveries_wait_behind_an_earlier_one_of_their_subject,
            notifications::deliveries_are_pruned_by_when_they_ended_and_never_while_pending,
            notifications::change_events_and_audit_records_keep_their_details,
        );
    };
    (@tests $backend:ident, $open:expr; $($aggregate:ident::$behaviour:ident),* $(,)?) => {
        mod $backend {
            use super::*;

            $(
                #[tokio::test]
                async fn $behaviour() {
                    // `None`: the backend is not available here (the harness said why).
                    let Some((store, _dir)): Option<OpenedStore> = $open.await else {
                        return;
                    };
                    super::$aggregate::$behaviour(store).await;
                }
            )*
        }
    };
}

/// Behaviours only the read cache has (what the services read from it without I/O).
macro_rules! read_cache_suite {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn cached_flags_reflect_writes_and_deletes() {
                let Some((cache, _dir)) = $open.await else {
                    return;
                };
                super::read_cache::cached_flags_reflect_writes_and_deletes(cache).await;
            }

            #[tokio::test]
            async fn cached_tokens_reflect_creates_and_revokes() {
                let Some((cache, _dir)) = $open.await else {
                    return;
                };
                super::read_cache::cached_tokens_reflect_creates_and_revokes(cache).await;
            }
        }
    };
}

store_conformance_suite!(memory, memory_store());
store_conformance_suite!(sqlite, sqlite_store());
store_conformance_suite!(cached_sqlite, cached_sqlite_store());
read_cache_suite!(read_cache_sqlite, read_cache_over(sqlite_store()));
store_conformance_suite!(postgres, postgres_store());
store_conformance_suite!(cached_postgres, cached_postgres_store());
read_cache_suite!(read_cache_postgres, read_cache_over(postgres_store()));

async fn read_cache_over(
    opened: impl std::future::Future<Output = Option<OpenedStore>>,
) -> Option<(Arc<CachedStore>, Option<TempDir>)> {
    let (inner, dir) = opened.await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

async fn memory_store() -> Option<OpenedStore> {
    Some((Arc::new(MemoryStore::new()), None))
}

async fn sqlite_store() -> Option<OpenedStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::open(&url).await.expect("sqlite store opens");
    Some((store.shared(), Some(dir)))
}

async fn cached_sqlite_store() -> Option<OpenedStore> {
    let (inner, dir) = sqlite_store().await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

async fn postgres_store() -> Option<OpenedStore> {
    let url = common::postgres::test_database_url().await?;
    let store = PostgresStore::open(&url)
        .await
        .expect("postgres store opens");
    Some((Arc::new(store), None))
}

async fn cached_postgres_store() -> Option<OpenedStore> {
    let (inner, dir) = postgres_store().await?;
    let cached = CachedStore::load(inner).await.expect("cache loads");
    Some((Arc::new(cached), dir))
}

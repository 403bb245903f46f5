//! Access: API tokens (created once, revoked once, kept out of config audits) and denials.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::access::model::{ApiToken, Denial};
use summit_config::core::error::Error;
use summit_config::core::events::{ChangeEvent, kind};
use summit_config::core::model::AuditRecord;
use summit_config::core::ports::{AuditQuery, AuditSubject, Documents, Store};
use summit_config::core::service::now;

use super::fixtures::*;

/// What token writes may change, as seen through the trait.
async fn observe_tokens(store: &dyn Store) -> (Vec<ApiToken>, Vec<ChangeEvent>, Vec<AuditRecord>) {
    (
        store.tokens().await.expect("tokens"),
        store.changes_since(0, 1000).await.expect("changes"),
        store.audit(all_audit()).await.expect("audit"),
    )
}

pub(super) async fn tokens_are_listed_oldest_first_and_revoked_once(store: Arc<dyn Store>) {
    let base = now();
    // Created out of order: the list is by creation time, not by insertion.
    let (older, newer) = (api_token(2, base, 0), api_token(1, base, 60));
    let created = [
        store
            .create_token(token_write(&newer))
            .await
            .expect("create newer"),
        store
            .create_token(token_write(&older))
            .await
            .expect("create older"),
    ];
    for (index, (committed, token)) in created.iter().zip([&newer, &older]).enumerate() {
        assert_eq!(committed.event.revision, index as u64 + 1);
        assert_eq!(committed.event.kind, kind::TOKEN_CREATED);
        assert_eq!(committed.event.config_id, token.id);
        assert_eq!(committed.event.at, token.created_at);
        assert!(committed.follow_up.is_none());
    }
    assert_eq!(
        store.tokens().await.expect("tokens"),
        [older.clone(), newer.clone()]
    );

    let at = base + chrono::Duration::seconds(120);
    let revoked = store
        .revoke_token(token_revoke(&newer.id, at))
        .await
        .expect("revoke");
    assert_eq!(revoked.event.revision, 3);
    assert_eq!(revoked.event.kind, kind::TOKEN_REVOKED);
    assert_eq!(revoked.event.config_id, newer.id);
    assert_eq!(revoked.event.at, at);
    let tokens = store.tokens().await.expect("tokens");
    assert_eq!(tokens[0], older, "the other token is untouched");
    assert_eq!(tokens[1].revoked_at, Some(at));
    assert!(!tokens[1].is_active(at));

    let records = store.audit(all_audit()).await.expect("audit");
    let actions: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|r| (r.revision, r.action.as_str(), r.config_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (3, "token.revoke", newer.id.as_str()),
            (2, "token.create", older.id.as_str()),
            (1, "token.create", newer.id.as_str()),
        ]
    );

    let before = observe_tokens(store.as_ref()).await;
    let error = store
        .revoke_token(token_revoke(&newer.id, at + chrono::Duration::seconds(1)))
        .await
        .expect_err("already revoked");
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

pub(super) async fn a_token_whose_id_or_hash_is_taken_is_a_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let base = now();
    let token = api_token(1, base, 0);
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    let before = observe_tokens(store.as_ref()).await;

    let same_secret = ApiToken {
        id: api_token(2, base, 0).id,
        ..token.clone()
    };
    let same_id = ApiToken {
        hash: api_token(2, base, 0).hash,
        ..token.clone()
    };
    for taken in [same_secret, same_id] {
        let error = store
            .create_token(token_write(&taken))
            .await
            .expect_err("a taken id or hash is refused");
        assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    }
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

pub(super) async fn revoking_an_absent_token_is_not_found_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let base = now();
    store
        .create_token(token_write(&api_token(1, base, 0)))
        .await
        .expect("create");
    let before = observe_tokens(store.as_ref()).await;
    let absent = api_token(2, base, 0).id;
    let error = store
        .revoke_token(token_revoke(&absent, base))
        .await
        .expect_err("no such token");
    assert!(
        matches!(&error, Error::NotFound { resource: "token", id } if *id == absent),
        "{error:?}"
    );
    assert_eq!(observe_tokens(store.as_ref()).await, before);
}

/// Token ids are UUIDs, which are also valid config ids: a config's audit must not list them.
pub(super) async fn token_records_stay_out_of_a_config_audit_that_shares_the_id(
    store: Arc<dyn Store>,
) {
    let token = api_token(1, now(), 0);
    let config = config_id(&token.id);
    store
        .configs()
        .append(version_write(&config, json!({ "v": 1 }), 0))
        .await
        .expect("config v1");
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    store
        .revoke_token(token_revoke(&token.id, now()))
        .await
        .expect("revoke");

    let of_config = store
        .audit(AuditQuery {
            subject: Some(AuditSubject::Config(config)),
            ..all_audit()
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = of_config.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["config.put"]);
    assert_eq!(store.audit(all_audit()).await.expect("audit").len(), 3);
}

pub(super) async fn denials_are_appended_without_a_revision_and_listed_newest_first(
    store: Arc<dyn Store>,
) {
    assert!(store.denials(None, 10).await.expect("denials").is_empty());
    let recorded: Vec<Denial> = (1..=5)
        .map(|n| denial(n, (!n.is_multiple_of(2)).then_some("checkout")))
        .collect();
    for denial in &recorded {
        store
            .record_denial(denial.clone())
            .await
            .expect("record denial");
    }
    assert_eq!(
        store.latest_revision().await.expect("latest revision"),
        0,
        "a denial is not a change"
    );

    let listed = store.denials(None, 100).await.expect("denials");
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    for (stored, denial) in listed.iter().rev().zip(&recorded) {
        assert_eq!(
            stored,
            &Denial {
                id: stored.id,
                ..denial.clone()
            }
        );
    }

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.denials(before, 2).await.expect("denials page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, listed);
}

//! The read cache's bound: at most N heads in memory, lists and misses still complete.

use std::sync::Arc;

use serde_json::json;
use summit_config::core::access::model::{ApiToken, Role, Scopes};
use summit_config::core::checksum::checksum;
use summit_config::core::ids::ConfigId;
use summit_config::core::model::{AuditDraft, ConfigDocument, Metadata, NewVersion};
use summit_config::core::ports::{Documents, ReadCache, Store, TokenWrite, VersionWrite};
use summit_config::core::service::now;
use summit_config::store::{CachedStore, MemoryStore};

async fn store_with(ids: &[&str]) -> Arc<dyn Store> {
    let store = Arc::new(MemoryStore::new());
    for id in ids {
        let config = json!({"id": id});
        store
            .configs()
            .append(VersionWrite {
                version: NewVersion {
                    id: ConfigId::parse(id).unwrap(),
                    checksum: checksum(&config),
                    document: ConfigDocument {
                        config,
                        overrides: Default::default(),
                        canary: None,
                        ab_test: None,
                    },
                    metadata: Metadata {
                        actor: "t".into(),
                        message: None,
                        ..Default::default()
                    },
                    created_at: now(),
                    rollback_of: None,
                },
                expected_live: 0,
                expected_schema: 0,
                expected_number: None,
                audit: AuditDraft {
                    actor: "t".into(),
                    action: "config.put",
                    environments: vec!["*".into()],
                    message: None,
                    on_behalf_of: None,
                    details: Default::default(),
                },
                applies: None,
                announce: Vec::new(),
            })
            .await
            .unwrap();
    }
    store
}

#[tokio::test]
async fn a_bounded_cache_keeps_at_most_its_bound_and_still_answers_everything() {
    let ids = ["a", "b", "c", "d", "e"];
    let cache = CachedStore::load_bounded(store_with(&ids).await, 3)
        .await
        .unwrap();
    assert_eq!(cache.cached_configs(), 3);
    let listed: Vec<String> = cache
        .configs()
        .heads()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.latest.id.to_string())
        .collect();
    assert_eq!(
        listed, ids,
        "lists come from the store once the cache is incomplete"
    );
    for id in ids {
        let head = cache
            .configs()
            .head(&ConfigId::parse(id).unwrap())
            .await
            .unwrap();
        assert_eq!(head.unwrap().latest.document.config, json!({"id": id}));
        assert!(cache.cached_configs() <= 3, "the bound holds after misses");
    }
}

#[tokio::test]
async fn an_unbounded_cache_answers_lists_from_memory() {
    let ids = ["a", "b"];
    let cache = CachedStore::load(store_with(&ids).await).await.unwrap();
    assert_eq!(cache.cached_configs(), 2);
    assert!(cache.cached_head(&ConfigId::parse("a").unwrap()).is_some());
    assert_eq!(cache.configs().heads().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_bounded_cache_still_holds_every_token() {
    let store = store_with(&["a", "b", "c"]).await;
    for n in 1..=3 {
        store
            .create_token(TokenWrite {
                token: ApiToken {
                    id: format!("00000000-0000-4000-8000-{n:012}"),
                    name: format!("ci-{n}"),
                    roles: vec![Role::ConfigReader],
                    scopes: Scopes::default(),
                    hash: checksum(&json!(n)),
                    created_at: now(),
                    created_by: "t".into(),
                    expires_at: None,
                    revoked_at: None,
                },
                audit: AuditDraft {
                    actor: "t".into(),
                    action: "token.create",
                    environments: Vec::new(),
                    message: None,
                    on_behalf_of: None,
                    details: Default::default(),
                },
            })
            .await
            .unwrap();
    }
    let cache = CachedStore::load_bounded(store, 1).await.unwrap();
    assert_eq!(cache.cached_configs(), 1);
    let tokens = cache.cached_tokens();
    assert_eq!(tokens.len(), 3, "tokens are never bounded");
    for n in 1..=3 {
        assert_eq!(tokens[&checksum(&json!(n))].name, format!("ci-{n}"));
    }
}

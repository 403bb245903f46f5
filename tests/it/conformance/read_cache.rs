//! The read cache: what it serves without I/O, and how replicas follow each other's changes.

use std::sync::Arc;

use summit_config::core::ports::{AccessStore, Documents, ReadCache, Store};
use summit_config::core::service::now;
use summit_config::store::CachedStore;

use super::fixtures::*;

/// Two read caches over one store stand for two replicas: a flag written through one reaches
/// the other through `apply_change` (what the replication follower calls for every change).
pub(super) async fn a_read_cache_loads_flags_and_follows_flag_changes_committed_elsewhere(
    store: Arc<dyn Store>,
) {
    let (kept, retired) = (flag_key("kept"), flag_key("retired"));
    store
        .flags()
        .append(flag_write(&kept, "v1", 0))
        .await
        .expect("kept v1");
    store
        .flags()
        .append(flag_write(&retired, "v1", 0))
        .await
        .expect("retired v1");
    store
        .flags()
        .delete(flag_delete_write(&retired, 1))
        .await
        .expect("retire");

    let writer = CachedStore::load(store.clone()).await.expect("cache loads");
    let follower = CachedStore::load(store.clone()).await.expect("cache loads");
    let loaded = follower.cached_flags();
    assert_eq!(
        flag_states(loaded.heads.values()),
        [
            ("kept".to_owned(), 1, false),
            ("retired".to_owned(), 1, true)
        ],
        "deleted flags are loaded too"
    );

    let fresh = flag_key("fresh");
    let events = [
        writer
            .flags()
            .append(flag_write(&kept, "v2", 1))
            .await
            .expect("kept v2")
            .event,
        writer
            .flags()
            .append(flag_write(&fresh, "v1", 0))
            .await
            .expect("fresh v1")
            .event,
        writer
            .flags()
            .delete(flag_delete_write(&kept, 2))
            .await
            .expect("delete kept")
            .event,
    ];
    assert_eq!(
        flag_states(follower.cached_flags().heads.values()),
        flag_states(loaded.heads.values()),
        "nothing reaches the follower before it applies the changes"
    );

    for event in &events {
        follower.apply_change(event).await.expect("apply change");
    }
    let expected = [
        ("fresh".to_owned(), 1, false),
        ("kept".to_owned(), 2, true),
        ("retired".to_owned(), 1, true),
    ];
    let followed = follower.cached_flags();
    assert_eq!(flag_states(followed.heads.values()), expected);
    assert_eq!(
        flag_states(&follower.flags().heads().await.expect("flag heads")),
        expected
    );
    assert_eq!(
        flag_states(&store.flags().heads().await.expect("flag heads")),
        expected
    );

    // Applying a change again, or an older one, never moves the cache back.
    follower
        .apply_change(&events[0])
        .await
        .expect("apply change");
    assert_eq!(
        flag_states(follower.cached_flags().heads.values()),
        expected
    );
}

/// Only for the read cache: evaluation reads `cached_flags()`, so every write and delete must
/// show there, in a new set (a set already handed out does not change under its reader).
pub(super) async fn cached_flags_reflect_writes_and_deletes(store: Arc<CachedStore>) {
    let cached = || store.cached_flags();
    let empty = cached();
    assert!(empty.heads.is_empty());

    let (checkout, banner) = (flag_key("newCheckout"), flag_key("banner"));
    store
        .flags()
        .append(flag_write(&checkout, "v1", 0))
        .await
        .expect("v1");
    let first = cached();
    assert_eq!(
        first.live("newCheckout").map(|v| v.version),
        Some(1),
        "a write shows at once"
    );
    assert!(empty.heads.is_empty(), "a set handed out never changes");

    store
        .flags()
        .append(flag_write(&checkout, "v2", 1))
        .await
        .expect("v2");
    store
        .flags()
        .append(flag_write(&banner, "v1", 0))
        .await
        .expect("banner v1");
    let second = cached();
    assert_eq!(
        second.live("newCheckout").map(|v| v.document.clone()),
        Some(flag_definition("v2", "off"))
    );
    assert_eq!(second.live("banner").map(|v| v.version), Some(1));

    store
        .flags()
        .delete(flag_delete_write(&checkout, 2))
        .await
        .expect("delete");
    let deleted = cached();
    assert!(
        deleted.live("newCheckout").is_none(),
        "a delete shows at once"
    );
    assert_eq!(
        flag_states(deleted.heads.values()),
        [
            ("banner".to_owned(), 1, false),
            ("newCheckout".to_owned(), 2, true),
        ]
    );

    store
        .flags()
        .append(flag_write(&checkout, "lost", 2))
        .await
        .expect_err("stale");
    assert_eq!(
        flag_states(cached().heads.values()),
        flag_states(deleted.heads.values()),
        "a refused write changes nothing"
    );

    store
        .flags()
        .append(flag_write(&checkout, "v3", 0))
        .await
        .expect("recreate");
    assert_eq!(cached().live("newCheckout").map(|v| v.version), Some(3));
    assert_eq!(
        flag_states(&store.flags().heads().await.expect("flag heads")),
        flag_states(cached().heads.values())
    );
}

/// Two read caches over one store stand for two replicas: a token revoked through one is
/// refused by the other once it applies the `token.revoked` change.
pub(super) async fn a_read_cache_follows_token_changes_committed_elsewhere(store: Arc<dyn Store>) {
    let base = now();
    let (kept, revoked) = (api_token(1, base, 0), api_token(2, base, 1));
    store
        .create_token(token_write(&kept))
        .await
        .expect("create kept");

    let writer = CachedStore::load(store.clone()).await.expect("cache loads");
    let follower = CachedStore::load(store.clone()).await.expect("cache loads");
    let cached = |cache: &CachedStore, hash: &str| {
        cache
            .cached_tokens()
            .get(hash)
            .map(|token| token.as_ref().clone())
    };
    assert_eq!(cached(&follower, &kept.hash), Some(kept.clone()), "loaded");

    let created = writer
        .create_token(token_write(&revoked))
        .await
        .expect("create")
        .event;
    assert_eq!(cached(&follower, &revoked.hash), None, "not applied yet");
    follower.apply_change(&created).await.expect("apply change");
    assert_eq!(cached(&follower, &revoked.hash), Some(revoked.clone()));

    let at = base + chrono::Duration::seconds(5);
    let revocation = writer
        .revoke_token(token_revoke(&revoked.id, at))
        .await
        .expect("revoke")
        .event;
    assert!(
        cached(&follower, &revoked.hash)
            .expect("cached")
            .revoked_at
            .is_none(),
        "not applied yet"
    );
    follower
        .apply_change(&revocation)
        .await
        .expect("apply change");
    let seen = cached(&follower, &revoked.hash).expect("cached");
    assert_eq!(seen.revoked_at, Some(at));
    assert!(!seen.is_active(at));
    assert_eq!(cached(&follower, &kept.hash), Some(kept));
}

/// Only for the read cache: authentication reads `cached_tokens()`, so a create and a revoke
/// through the cache must show there at once, in a new map.
pub(super) async fn cached_tokens_reflect_creates_and_revokes(store: Arc<CachedStore>) {
    let cached = || store.cached_tokens();
    let empty = cached();
    assert!(empty.is_empty());

    let base = now();
    let token = api_token(1, base, 0);
    store
        .create_token(token_write(&token))
        .await
        .expect("create");
    let created = cached();
    assert_eq!(
        created.get(&token.hash).map(|t| t.as_ref()),
        Some(&token),
        "a create shows at once"
    );
    assert!(empty.is_empty(), "a map handed out never changes");

    let at = base + chrono::Duration::seconds(1);
    store
        .revoke_token(token_revoke(&token.id, at))
        .await
        .expect("revoke");
    let revoked = cached();
    assert_eq!(
        revoked.get(&token.hash).and_then(|t| t.revoked_at),
        Some(at),
        "a revoke shows at once"
    );
    assert!(created[&token.hash].revoked_at.is_none());
    assert_eq!(
        revoked
            .values()
            .map(|t| t.as_ref().clone())
            .collect::<Vec<_>>(),
        store.tokens().await.expect("tokens")
    );
}

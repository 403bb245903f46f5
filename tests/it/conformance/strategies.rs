//! Deployment strategies: versions of a named document, kept apart from the other kinds.

use std::sync::Arc;

use summit_config::core::deployments::strategy::{Gate, Rollout, Strategy};
use summit_config::core::events::kind;
use summit_config::core::ids::StrategyName;
use summit_config::core::model::{AuditDraft, Metadata};
use summit_config::core::ports::{
    AuditQuery, AuditSubject, Documents, Store, StrategyDeleteWrite, StrategyWrite,
};
use summit_config::core::service::now;
use summit_config::core::versioned::{Document, NewVersion};

use super::fixtures::{all_audit, config_id, version_write};

fn strategy(final_bake_secs: u64) -> Strategy {
    Strategy {
        rollout: Rollout::Linear {
            step_percent: 25,
            interval_secs: 30,
        },
        final_bake_secs,
        gate: Gate {
            max_error_rate: Some(0.02),
            ..Gate::default()
        },
        description: Some("quarters".to_owned()),
    }
}

fn audit(action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: "ops".to_owned(),
        action,
        environments: Vec::new(),
        message: None,
        on_behalf_of: None,
        details: Default::default(),
    }
}

fn write(name: &StrategyName, document: Strategy, expected_live: u64) -> StrategyWrite {
    StrategyWrite {
        version: NewVersion {
            id: name.clone(),
            checksum: document.checksum().unwrap(),
            document,
            metadata: Metadata {
                actor: "ops".to_owned(),
                ..Default::default()
            },
            created_at: now(),
            rollback_of: None,
        },
        expected_live,
        expected_schema: 0,
        expected_number: None,
        audit: audit(kind::STRATEGY_UPDATED.as_str()),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) async fn strategy_versions_round_trip_and_a_delete_keeps_history(store: Arc<dyn Store>) {
    let name = StrategyName::parse("quarters").unwrap();
    let first = store
        .strategies()
        .append(write(&name, strategy(60), 0))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.event.kind, kind::STRATEGY_UPDATED);
    let second = store
        .strategies()
        .append(write(&name, strategy(120), 1))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let head = store.strategies().head(&name).await.unwrap().unwrap();
    assert_eq!(head.latest.document, strategy(120));
    let old = store.strategies().version(&name, 1).await.unwrap().unwrap();
    assert_eq!(old.document, strategy(60), "every field round-trips");
    let versions = store.strategies().versions(&name, None, 10).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    // A config of the same name is another document.
    assert!(
        store
            .configs()
            .head(&summit_config::core::ids::ConfigId::parse("quarters").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let deleted = store
        .strategies()
        .delete(StrategyDeleteWrite {
            id: name.clone(),
            expected_live: 2,
            audit: audit(kind::STRATEGY_DELETED.as_str()),
            at: now(),
            applies: None,
            announce: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(deleted.event.kind, kind::STRATEGY_DELETED);
    let head = store.strategies().head(&name).await.unwrap().unwrap();
    assert!(head.deleted);
    assert_eq!(store.strategies().heads().await.unwrap().len(), 1);
    assert_eq!(
        store
            .strategies()
            .versions(&name, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // A config of the same name keeps its own audit.
    let config = config_id("quarters");
    store
        .configs()
        .append(version_write(&config, serde_json::json!({"v": 1}), 0))
        .await
        .unwrap();
    let of_config = store
        .audit(AuditQuery {
            subject: Some(AuditSubject::Config(config)),
            ..all_audit()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = of_config.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["config.put"]);
}

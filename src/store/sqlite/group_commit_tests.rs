//! Group commit: writes queued together commit in one transaction, each with its own
//! expectations and result, and revisions stay gap-free in commit order.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;

use super::SqliteStore;
use crate::core::checksum::checksum;
use crate::core::error::Error;
use crate::core::ids::ConfigId;
use crate::core::model::{AuditDraft, ConfigDocument, Metadata, NewVersion};
use crate::core::ports::{
    AuditQuery, ChangeLog, ConfigWrite, DeleteWrite, Documents, VersionWrite,
};

fn id(text: &str) -> ConfigId {
    ConfigId::parse(text).unwrap()
}

fn audit() -> AuditDraft {
    AuditDraft {
        actor: "alice".to_owned(),
        action: "config.put",
        environments: vec!["*".to_owned()],
        message: Some("group commit".to_owned()),
        on_behalf_of: None,
        details: Default::default(),
    }
}

fn version_write(config_id: &str, expected_live: u64) -> ConfigWrite {
    let config = json!({"owner": config_id});
    VersionWrite {
        version: NewVersion {
            id: id(config_id),
            checksum: checksum(&config),
            document: ConfigDocument {
                config,
                overrides: BTreeMap::new(),
                canary: None,
                ab_test: None,
            },
            metadata: Metadata {
                actor: "alice".to_owned(),
                ..Default::default()
            },
            created_at: Utc::now(),
            rollback_of: None,
        },
        expected_live,
        expected_schema: 0,
        expected_number: None,
        audit: audit(),
        applies: None,
        announce: Vec::new(),
    }
}

// One thread: every write below is queued before the committer runs, so they form one batch.
#[tokio::test(flavor = "current_thread")]
async fn writes_queued_together_keep_their_own_expectations_and_gap_free_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::open(&url).await.unwrap();

    let twins = futures::future::join_all([
        store.configs().append(version_write("twin", 0)),
        store.configs().append(version_write("twin", 0)),
    ]);
    let plain = futures::future::join_all((0..3).map(|n| {
        store
            .configs()
            .append(version_write(&format!("plain-{n}"), 0))
    }));
    let absent = store.configs().delete(DeleteWrite {
        id: id("absent"),
        expected_live: 1,
        audit: audit(),
        at: Utc::now(),
        applies: None,
        announce: Vec::new(),
    });
    let (twins, plain, absent) = tokio::join!(twins, plain, absent);

    let won: Vec<_> = twins.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "exactly one twin gets version 1");
    assert_eq!(won[0].version, 1);
    assert!(
        twins.iter().any(|r| matches!(
            r,
            Err(Error::VersionConflict {
                expected: 0,
                actual: 1
            })
        )),
        "the other twin is a version conflict: {twins:?}"
    );
    assert!(matches!(absent, Err(Error::NotFound { .. })), "{absent:?}");

    let mut answered: Vec<u64> = plain
        .iter()
        .map(|r| r.as_ref().unwrap().event.revision)
        .chain([won[0].event.revision])
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 2, 3, 4]);
    let logged: Vec<u64> = store
        .changes_since(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|change| change.revision)
        .collect();
    assert_eq!(logged, answered);
    let audit = store
        .audit(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 4, "refused writes leave no audit record");
    let head = store.configs().head(&id("twin")).await.unwrap().unwrap();
    assert_eq!(head.latest.version, 1);
}

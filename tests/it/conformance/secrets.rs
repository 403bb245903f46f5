//! Secrets of the built-in store: versions of a sealed document, and the audited read that
//! takes a revision without writing rows.

use std::sync::Arc;

use summit_config::core::events::{ChangeKind, kind};
use summit_config::core::ids::SecretName;
use summit_config::core::model::Metadata;
use summit_config::core::ports::{
    AuditQuery, Documents, Record, SecretDeleteWrite, SecretWrite, Store,
};
use summit_config::core::secrets::crypto::{Kek, Keyring};
use summit_config::core::secrets::model::{Origin, SecretDocument, ValueFormat};
use summit_config::core::secrets::rotation::{Encoding, Generator, RotationPolicy};
use summit_config::core::service::now;
use summit_config::core::versioned::{Document, NewVersion};

use super::fixtures::*;

fn keyring() -> Keyring {
    Keyring::new(Kek::from_bytes(&[7u8; 32]).expect("key"), Vec::new())
}

fn name(text: &str) -> SecretName {
    SecretName::parse(text).expect("valid secret name")
}

fn secret_write(keyring: &Keyring, secret: &SecretName, number: u64, value: &str) -> SecretWrite {
    let document = SecretDocument {
        format: ValueFormat::String,
        sealed: keyring
            .seal(secret.as_str(), number, value.as_bytes())
            .expect("seal"),
        // Every field of the document round-trips on every backend.
        rotation: Some(RotationPolicy {
            interval_secs: 3600,
            grace_period_secs: 60,
            generator: Generator::Bytes {
                length: 32,
                encoding: Encoding::Base64,
                field: None,
            },
        }),
        pending: false,
        previous: (number > 1).then(|| number - 1),
        origin: Some(Origin::Rotation {
            scheduled: true,
            due_at: Some(now()),
        }),
    };
    SecretWrite {
        version: NewVersion {
            id: secret.clone(),
            checksum: document.checksum().expect("checksum"),
            document,
            metadata: Metadata {
                actor: "sam".to_owned(),
                message: Some("rotate".to_owned()),
                ..Default::default()
            },
            created_at: now(),
            rollback_of: None,
        },
        expected_live: number - 1,
        expected_schema: 0,
        expected_number: None,
        audit: audit_draft("secret.put", "sam", "rotate"),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) async fn secret_versions_keep_only_sealed_values_and_a_delete_keeps_history(
    store: Arc<dyn Store>,
) {
    let keyring = keyring();
    let secret = name("db-password");
    for (number, value) in [(1, "first"), (2, "second")] {
        let committed = store
            .secrets()
            .append(secret_write(&keyring, &secret, number, value))
            .await
            .expect("append");
        assert_eq!(committed.version, number);
        assert_eq!(committed.event.kind, kind::SECRET_UPDATED);
        assert_eq!(committed.event.config_id, "db-password");
    }
    let head = store
        .secrets()
        .head(&secret)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.latest.version, 2);
    let opened = keyring
        .open("db-password", 2, &head.latest.document.sealed)
        .expect("opens");
    assert_eq!(opened, b"second");
    let v1 = store
        .secrets()
        .version(&secret, 1)
        .await
        .expect("version")
        .expect("v1 exists");
    assert_eq!(
        keyring
            .open("db-password", 1, &v1.document.sealed)
            .expect("opens"),
        b"first"
    );
    assert!(
        keyring.open("db-password", 2, &v1.document.sealed).is_err(),
        "a sealed value opens only as its own version"
    );
    assert!(
        keyring.open("other", 1, &v1.document.sealed).is_err(),
        "and only as its own secret"
    );

    let committed = store
        .secrets()
        .delete(SecretDeleteWrite {
            id: secret.clone(),
            expected_live: 2,
            audit: audit_draft("secret.delete", "sam", "retire"),
            at: now(),
            applies: None,
            announce: Vec::new(),
        })
        .await
        .expect("delete");
    assert_eq!(
        (committed.version, committed.event.kind),
        (2, kind::SECRET_DELETED)
    );
    let head = store
        .secrets()
        .head(&secret)
        .await
        .expect("head")
        .expect("kept");
    assert!(head.deleted);
    let history = store
        .secrets()
        .versions(&secret, None, 10)
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
}

pub(super) async fn a_record_takes_a_revision_and_an_audit_record_and_writes_no_rows(
    store: Arc<dyn Store>,
) {
    let before = store.latest_revision().await.expect("revision");
    let committed = store
        .record(Record {
            kind: kind::SECRET_READ,
            subject: "db-password".to_owned(),
            version: 3,
            audit: audit_draft("secret.read", "sam", "debugging"),
            at: now(),
        })
        .await
        .expect("record");
    assert_eq!(committed.event.revision, before + 1);
    assert_eq!(committed.event.kind, kind::SECRET_READ);
    let changes = store.changes_since(before, 10).await.expect("changes");
    assert_eq!(changes, std::slice::from_ref(&committed.event));
    let audit = store
        .audit(AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].config_id.as_str(),
            audit[0].version
        ),
        ("secret.read", "db-password", Some(3))
    );
    assert!(
        store
            .secrets()
            .head(&name("db-password"))
            .await
            .expect("head")
            .is_none(),
        "a record writes no secret"
    );
}

pub(super) async fn a_write_commits_its_announcements_in_its_transaction_and_a_failed_one_none(
    store: Arc<dyn Store>,
) {
    let keyring = keyring();
    let secret = name("announced");
    let announce = |config: &str| Record {
        kind: kind::CONFIG_SECRETS_CHANGED,
        subject: config.to_owned(),
        version: 4,
        audit: audit_draft("config.secrets_changed", "summit-config", "secret rotated"),
        at: now(),
    };
    let before = store.latest_revision().await.expect("revision");
    let mut write = secret_write(&keyring, &secret, 1, "value");
    write.announce = vec![announce("svc-a"), announce("svc-b")];
    let committed = store.secrets().append(write).await.expect("append");
    let revisions: Vec<u64> = std::iter::once(&committed.event)
        .chain(&committed.announced)
        .map(|e| e.revision)
        .collect();
    assert_eq!(revisions, vec![before + 1, before + 2, before + 3]);
    let announced: Vec<(&str, ChangeKind)> = committed
        .announced
        .iter()
        .map(|e| (e.config_id.as_str(), e.kind))
        .collect();
    assert_eq!(
        announced,
        vec![
            ("svc-a", kind::CONFIG_SECRETS_CHANGED),
            ("svc-b", kind::CONFIG_SECRETS_CHANGED)
        ]
    );
    let changes = store.changes_since(before, 10).await.expect("changes");
    assert_eq!(changes.len(), 3, "{changes:?}");
    let audit = store
        .audit(AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(audit[0].action, "config.secrets_changed");

    // A write whose expectation fails commits none of its announcements.
    let mut stale = secret_write(&keyring, &secret, 2, "value");
    stale.expected_live = 0;
    stale.announce = vec![announce("svc-c")];
    assert!(store.secrets().append(stale).await.is_err());
    assert_eq!(
        store.latest_revision().await.expect("revision"),
        before + 3,
        "nothing of the refused write was recorded"
    );
}

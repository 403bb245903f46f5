//! Shared fixtures: the writes each behaviour makes and what it observes through the ports.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use summit_config::core::access::model::{ApiToken, Denial, Role, Scopes};
use summit_config::core::checksum::checksum;
use summit_config::core::events::ChangeEvent;
use summit_config::core::flags::{FlagDefinition, FlagHead, NewFlagVersion};
use summit_config::core::ids::{ConfigId, FlagKey};
use summit_config::core::model::{AuditDraft, AuditRecord, ConfigDocument, Metadata, NewVersion};
use summit_config::core::ports::{
    AuditQuery, ConfigDeleteWrite, ConfigWrite, Documents, FlagDeleteWrite, FlagWrite, SchemaWrite,
    Store, TokenRevoke, TokenWrite,
};
use summit_config::core::service::now;

pub(super) fn config_id(id: &str) -> ConfigId {
    ConfigId::parse(id).expect("valid config id")
}

pub(super) fn document(config: Value) -> ConfigDocument {
    ConfigDocument {
        config,
        overrides: BTreeMap::new(),
        canary: None,
        ab_test: None,
    }
}

pub(super) fn audit_draft(action: &'static str, actor: &str, message: &str) -> AuditDraft {
    AuditDraft {
        actor: actor.to_owned(),
        action,
        environments: vec!["*".to_owned()],
        message: Some(message.to_owned()),
        on_behalf_of: None,
        details: Default::default(),
    }
}

pub(super) fn new_version(id: &ConfigId, config: Value) -> NewVersion {
    NewVersion {
        id: id.clone(),
        checksum: checksum(&config),
        document: document(config),
        metadata: Metadata {
            actor: "alice".to_owned(),
            message: Some("tune".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        rollback_of: None,
    }
}

pub(super) fn version_write(id: &ConfigId, config: Value, expected_live: u64) -> ConfigWrite {
    ConfigWrite {
        version: new_version(id, config),
        expected_live,
        expected_schema: 0,
        expected_number: None,
        audit: audit_draft("config.put", "alice", "tune"),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) fn delete_write(id: &ConfigId, expected_live: u64) -> ConfigDeleteWrite {
    ConfigDeleteWrite {
        id: id.clone(),
        expected_live,
        audit: audit_draft("config.delete", "bob", "retire"),
        at: now(),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) fn schema_write(
    id: &ConfigId,
    schema: Value,
    expected_schema: u64,
    expected_live: u64,
) -> SchemaWrite {
    SchemaWrite {
        config_id: id.clone(),
        checksum: checksum(&schema),
        schema,
        metadata: Metadata {
            actor: "carol".to_owned(),
            message: Some("constrain".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        expected_schema,
        expected_live,
        audit: audit_draft("schema.put", "carol", "constrain"),
    }
}

pub(super) fn flag_key(key: &str) -> FlagKey {
    FlagKey::parse(key).expect("valid flag key")
}

/// A boolean flag serving `default_variant` ("on" or "off"); `description` tells versions apart.
pub(super) fn flag_definition(description: &str, default_variant: &str) -> FlagDefinition {
    serde_json::from_value(json!({
        "description": description,
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "defaultVariant": default_variant,
    }))
    .expect("valid flag definition")
}

pub(super) fn new_flag_version(key: &FlagKey, definition: FlagDefinition) -> NewFlagVersion {
    NewFlagVersion {
        id: key.clone(),
        checksum: checksum(&serde_json::to_value(&definition).expect("definition serializes")),
        document: definition,
        metadata: Metadata {
            actor: "erin".to_owned(),
            message: Some("toggle".to_owned()),
            ..Default::default()
        },
        created_at: now(),
        rollback_of: None,
    }
}

pub(super) fn flag_write(key: &FlagKey, description: &str, expected_live: u64) -> FlagWrite {
    FlagWrite {
        version: new_flag_version(key, flag_definition(description, "off")),
        expected_live,
        expected_schema: 0,
        expected_number: None,
        audit: audit_draft("flag.put", "erin", "toggle"),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) fn flag_delete_write(key: &FlagKey, expected_live: u64) -> FlagDeleteWrite {
    FlagDeleteWrite {
        id: key.clone(),
        expected_live,
        audit: audit_draft("flag.delete", "frank", "retire"),
        at: now(),
        applies: None,
        announce: Vec::new(),
    }
}

pub(super) fn all_audit() -> AuditQuery {
    AuditQuery {
        subject: None,
        before: None,
        limit: 1000,
    }
}

/// Everything a write may change, as seen through the trait.
#[derive(Debug, PartialEq)]
pub(super) struct Observed {
    pub(super) head: Option<(u64, bool, String)>,
    pub(super) versions: Vec<u64>,
    pub(super) schema: Option<(u64, String)>,
    pub(super) changes: Vec<ChangeEvent>,
    pub(super) latest_revision: u64,
    pub(super) audit: Vec<AuditRecord>,
}

pub(super) async fn observe(store: &dyn Store, id: &ConfigId) -> Observed {
    Observed {
        head: store
            .configs()
            .head(id)
            .await
            .expect("head")
            .map(|h| (h.latest.version, h.deleted, h.latest.checksum.clone())),
        versions: version_numbers(store, id, None, 1000).await,
        schema: store
            .schema(id)
            .await
            .expect("schema")
            .map(|s| (s.version, s.checksum)),
        changes: store.changes_since(0, 1000).await.expect("changes"),
        latest_revision: store.latest_revision().await.expect("latest revision"),
        audit: store.audit(all_audit()).await.expect("audit"),
    }
}

/// Everything a flag write may change, as seen through the trait (flags have no schema).
pub(super) async fn observe_flag(store: &dyn Store, key: &FlagKey) -> Observed {
    Observed {
        head: store
            .flags()
            .head(key)
            .await
            .expect("flag head")
            .map(|h| (h.latest.version, h.deleted, h.latest.checksum.clone())),
        versions: flag_version_numbers(store, key, None, 1000).await,
        schema: None,
        changes: store.changes_since(0, 1000).await.expect("changes"),
        latest_revision: store.latest_revision().await.expect("latest revision"),
        audit: store.audit(all_audit()).await.expect("audit"),
    }
}

pub(super) async fn flag_version_numbers(
    store: &dyn Store,
    key: &FlagKey,
    before: Option<u64>,
    limit: u32,
) -> Vec<u64> {
    store
        .flags()
        .versions(key, before, limit)
        .await
        .expect("flag versions")
        .iter()
        .map(|v| v.version)
        .collect()
}

/// (key, version, deleted) of each head, in the order given.
pub(super) fn flag_states<'a>(
    heads: impl IntoIterator<Item = &'a FlagHead>,
) -> Vec<(String, u64, bool)> {
    heads
        .into_iter()
        .map(|h| (h.latest.id.to_string(), h.latest.version, h.deleted))
        .collect()
}

pub(super) async fn version_numbers(
    store: &dyn Store,
    id: &ConfigId,
    before: Option<u64>,
    limit: u32,
) -> Vec<u64> {
    store
        .configs()
        .versions(id, before, limit)
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect()
}

/// A token created `age_secs` seconds after `base`; `n` gives it its own id and secret.
pub(super) fn api_token(n: u32, base: DateTime<Utc>, age_secs: i64) -> ApiToken {
    ApiToken {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        name: format!("ci-{n}"),
        roles: vec![Role::ConfigReader, Role::ConfigAdmin],
        scopes: Scopes {
            config_prefixes: vec!["checkout".to_owned()],
            environments: vec!["staging".to_owned()],
            services: vec!["checkout-api".to_owned()],
        },
        hash: checksum(&json!(format!("secret-{n}"))),
        created_at: base + chrono::Duration::seconds(age_secs),
        created_by: "admin".to_owned(),
        expires_at: n
            .is_multiple_of(2)
            .then(|| base + chrono::Duration::days(30)),
        revoked_at: None,
    }
}

pub(super) fn token_audit(action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: "admin".to_owned(),
        action,
        environments: Vec::new(),
        message: None,
        on_behalf_of: None,
        details: Default::default(),
    }
}

pub(super) fn token_write(token: &ApiToken) -> TokenWrite {
    TokenWrite {
        token: token.clone(),
        audit: token_audit("token.create"),
    }
}

pub(super) fn token_revoke(id: &str, at: DateTime<Utc>) -> TokenRevoke {
    TokenRevoke {
        id: id.to_owned(),
        at,
        audit: token_audit("token.revoke"),
    }
}

pub(super) fn denial(n: u32, resource: Option<&str>) -> Denial {
    Denial {
        id: 0,
        at: now(),
        actor: format!("token:ci-{n}"),
        operation: "PUT /api/v1/configs/{id}".to_owned(),
        resource: resource.map(str::to_owned),
        reason: "config-admin role required".to_owned(),
    }
}

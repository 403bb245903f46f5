//! Managing webhooks: create (the signing secret is shown once), list, read, update, delete,
//! rotate the secret (the old one keeps signing during an overlap), the delivery log and
//! redelivery. Everything needs the `manage-webhooks` permission.

mod secrets;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::matching::valid_pattern;
use super::model::{Delivery, Webhook, WebhookFilter};
use super::targets::Targets;
use crate::core::access::{Caller, Permission};
use crate::core::error::{Error, Result, retrying_when_moved};
use crate::core::events::{ChangeKind, kind};
use crate::core::ids::{Environment, FlagKey, Touched};
use crate::core::model::{AuditDraft, Page};
use crate::core::ports::{DeliveryQuery, Redelivery, Store, WebhookDelete, WebhookWrite};
use crate::core::secrets::crypto::Keyring;
use crate::core::service::now;

const MAX_EVENTS: usize = 50;
const MAX_FILTER_ITEMS: usize = 100;
const MAX_DESCRIPTION: usize = 1000;

/// `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub filter: WebhookFilter,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /api/v1/webhooks/{id}`: what is given changes. Enabling clears the failure state.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub filter: Option<WebhookFilter>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// The webhook's `seq` as read: the change is refused (409) if it moved since.
    pub expected_seq: Option<u64>,
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotation {
    /// How long the old secret keeps signing (both signatures are sent meanwhile).
    pub overlap_secs: Option<u64>,
}

/// A webhook as clients see it: never its secrets, only when the older one stops signing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[serde(flatten)]
    pub webhook: Webhook,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<Webhook> for WebhookView {
    fn from(webhook: Webhook) -> Self {
        let previous_secret_expires_at = webhook.secrets.iter().find_map(|s| s.expires_at);
        WebhookView {
            webhook,
            previous_secret_expires_at,
        }
    }
}

/// A webhook with its new signing secret, as shown once.
pub struct WithSecret {
    pub webhook: WebhookView,
    pub secret: String,
}

pub struct NotificationService {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    targets: Arc<Targets>,
    /// Wakes the dispatcher (a webhook changed, a delivery is due again).
    wake: Arc<Notify>,
}

impl NotificationService {
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        targets: Arc<Targets>,
        wake: Arc<Notify>,
    ) -> Self {
        NotificationService {
            store,
            keyring,
            targets,
            wake,
        }
    }

    pub async fn create(&self, caller: &Caller, request: NewWebhook) -> Result<WithSecret> {
        require_manager(caller)?;
        let url = self.targets.check_url(&request.url).await?.to_string();
        check_events(&request.events)?;
        check_filter(&request.filter)?;
        check_description(&request.description)?;
        let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
        let (secret, sealed) = self.new_secret(&id, 1)?;
        let at = now();
        let webhook = Webhook {
            id,
            url,
            events: request.events,
            filter: request.filter,
            description: request.description,
            enabled: request.enabled.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            seq: 1,
            since_revision: 0,
            created_at: at,
            updated_at: at,
            secrets: vec![sealed],
        };
        let audit = audit(caller, "webhook.create");
        self.write(webhook.clone(), None, kind::WEBHOOK_CREATED, audit)
            .await?;
        let webhook = self.get(caller, &webhook.id).await?;
        Ok(WithSecret { webhook, secret })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<WebhookView>> {
        require_manager(caller)?;
        Ok(self
            .store
            .webhooks()
            .await?
            .into_iter()
            .map(WebhookView::from)
            .collect())
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<WebhookView> {
        require_manager(caller)?;
        self.stored(id).await.map(WebhookView::from)
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        change: WebhookChange,
    ) -> Result<WebhookView> {
        require_manager(caller)?;
        if change.expected_seq.is_some() {
            return self.try_update(caller, id, change).await;
        }
        // Without a precondition, a change of its health meanwhile is not a conflict (the
        // dispatcher records a webhook's health between a read and a write).
        retrying_when_moved(|| self.try_update(caller, id, change.clone())).await
    }

    async fn try_update(
        &self,
        caller: &Caller,
        id: &str,
        change: WebhookChange,
    ) -> Result<WebhookView> {
        let mut webhook = self.stored(id).await?;
        let expected = webhook.seq;
        if change.expected_seq.is_some_and(|seq| seq != expected) {
            return Err(crate::core::ports::notifications::webhook_moved(id));
        }
        if let Some(url) = change.url {
            webhook.url = self.targets.check_url(&url).await?.to_string();
        }
        if let Some(events) = change.events {
            check_events(&events)?;
            webhook.events = events;
        }
        if let Some(filter) = change.filter {
            check_filter(&filter)?;
            webhook.filter = filter;
        }
        if let Some(description) = change.description {
            check_description(&description)?;
            webhook.description = description;
        }
        if let Some(enabled) = change.enabled {
            webhook.enabled = enabled;
            webhook.disabled_reason = (!enabled).then(|| "disabled by request".to_owned());
            if enabled {
                webhook.failing_since = None;
            }
        }
        webhook.seq = expected + 1;
        webhook.updated_at = now();
        let audit = audit(caller, "webhook.update");
        self.write(webhook, Some(expected), kind::WEBHOOK_UPDATED, audit)
            .await?;
        self.wake.notify_one();
        self.get(caller, id).await
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        require_manager(caller)?;
        require_webhook_id(id)?;
        self.store
            .delete_webhook(WebhookDelete {
                id: id.to_owned(),
                at: now(),
                audit: audit(caller, "webhook.delete"),
            })
            .await?;
        Ok(())
    }

    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Page<Delivery>> {
        require_manager(caller)?;
        self.stored(id).await?;
        let query = DeliveryQuery {
            webhook: id,
            before,
            limit,
        };
        let items = self.store.deliveries(query).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|d| d.id))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Sends a delivery again (whatever became of it), as soon as the dispatcher gets to it.
    pub async fn redeliver(&self, caller: &Caller, id: &str, delivery: u64) -> Result<Delivery> {
        require_manager(caller)?;
        require_webhook_id(id)?;
        let found = self
            .store
            .redeliver(Redelivery {
                webhook: id,
                delivery,
                at: now(),
            })
            .await?
            .ok_or_else(|| Error::not_found("delivery", format!("{id}/{delivery}")))?;
        self.wake.notify_one();
        Ok(found)
    }

    async fn stored(&self, id: &str) -> Result<Webhook> {
        self.store
            .webhooks()
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| Error::not_found("webhook", id))
    }

    async fn write(
        &self,
        webhook: Webhook,
        expected_seq: Option<u64>,
        kind: ChangeKind,
        audit: AuditDraft,
    ) -> Result<()> {
        self.store
            .put_webhook(WebhookWrite {
                webhook,
                expected_seq,
                kind,
                audit,
            })
            .await?;
        Ok(())
    }
}

/// The name a webhook's secrets are sealed under (bound into the ciphertext).
pub fn sealing_name(id: &str) -> String {
    format!("webhook:{id}")
}

/// Webhooks see every change they subscribe to: managing them needs the permission and no id
/// or environment scope.
fn require_manager(caller: &Caller) -> Result<()> {
    caller.require(Permission::ManageWebhooks)?;
    caller.require_unscoped_ids()?;
    caller.require_readable_environment(None)
}

fn audit(caller: &Caller, action: &'static str) -> AuditDraft {
    AuditDraft {
        actor: caller.identity().name.clone(),
        action,
        environments: Vec::new(),
        message: None,
        on_behalf_of: None,
        details: Default::default(),
    }
}

/// An id this service could have made (`wh_` and 32 hex digits); any other names no webhook,
/// and is answered without asking the store.
fn require_webhook_id(id: &str) -> Result<()> {
    let hex = id.strip_prefix("wh_").unwrap_or_default();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::not_found("webhook", id));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<()> {
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(Error::invalid(
            "/events",
            format!("events lists 1 to {MAX_EVENTS} kinds or prefixes"),
        ));
    }
    for (index, pattern) in events.iter().enumerate() {
        if !valid_pattern(pattern) {
            return Err(Error::invalid(
                format!("/events/{index}"),
                format!(
                    "'{pattern}' is not a kind (config.updated), a prefix (config. or \
                     config.*) or *"
                ),
            ));
        }
    }
    Ok(())
}

fn check_filter(filter: &WebhookFilter) -> Result<()> {
    if let Some(prefix) = &filter.config_prefix {
        let valid = prefix.len() <= 128
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid {
            return Err(Error::invalid(
                "/filter/configPrefix",
                "a config prefix is at most 128 of [a-z0-9._-]",
            ));
        }
    }
    if filter.environments.len() > MAX_FILTER_ITEMS || filter.flags.len() > MAX_FILTER_ITEMS {
        return Err(Error::invalid(
            "/filter",
            format!("a filter lists at most {MAX_FILTER_ITEMS} environments and flags"),
        ));
    }
    for (index, environment) in filter.environments.iter().enumerate() {
        if environment != Touched::EVERY {
            Environment::parse_field(environment, &format!("/filter/environments/{index}"))?;
        }
    }
    for (index, key) in filter.flags.iter().enumerate() {
        FlagKey::parse_field(key, &format!("/filter/flags/{index}"))?;
    }
    Ok(())
}

fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            "/description",
            format!("a description is at most {MAX_DESCRIPTION} characters"),
        ));
    }
    crate::core::validation::refuse_nul("/description", description)
}

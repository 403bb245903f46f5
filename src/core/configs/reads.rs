//! Reads: the latest version, lists, history, diffs, effective views, audit.

use super::{ConfigService, cached_or_stored_head};
use crate::core::access::{Caller, Permission};
use crate::core::ports::Documents;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::core::effective::{
    AssignmentInput, EffectiveDocument, EffectiveJson, Rendered, document_etag, effective_document,
    layers_of, select,
};
use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, Environment};
use crate::core::merge::diff;
use crate::core::model::{AuditRecord, ConfigSummary, ConfigVersion, Page};
use crate::core::ports::{AuditQuery, AuditSubject};
use crate::core::secrets::{SecretRef, referenced_name};

/// What a read of the effective config returns.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    /// The version read: its config's id and its number.
    pub source: Arc<ConfigVersion>,
    pub environment: Option<Environment>,
    /// The selected view: effective config, checksum, which layers applied.
    pub view: Arc<Rendered>,
    /// The config with secrets resolved, only when asked for.
    pub resolved: Option<Value>,
    /// The database did not answer lately: this comes from the cache and may be out of date.
    pub stale: bool,
}

impl EffectiveConfig {
    pub fn config_id(&self) -> &ConfigId {
        &self.source.id
    }

    pub fn version(&self) -> u64 {
        self.source.version
    }

    /// The effective document as JSON and its strong ETag: pre-rendered unless secrets were
    /// resolved or the caller named an environment that has no layer of its own.
    pub fn document(&self) -> (Bytes, Bytes) {
        let environment = self.environment.as_ref().map(Environment::as_str);
        if self.resolved.is_none() && self.view.environment.as_deref() == environment {
            return (self.view.document.clone(), self.view.etag.clone());
        }
        let document = effective_document(&EffectiveDocument {
            config_id: self.source.id.as_str(),
            version: self.source.version,
            environment,
            effective_config: match &self.resolved {
                Some(resolved) => EffectiveJson::Resolved(resolved),
                None => EffectiveJson::Rendered(&self.view.json),
            },
            checksum: &self.view.checksum,
            assignment: &self.view.assignment,
        });
        let etag = document_etag(&document);
        (Bytes::from(document), Bytes::from(etag))
    }
}

#[derive(Debug, Clone)]
pub struct EffectiveQuery {
    pub environment: Option<Environment>,
    pub assignment: AssignmentInput,
    pub resolve_secrets: bool,
    /// The instance asking: where deployments are required, it is served the version its
    /// deployment assigns it (else the released one).
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiffResult {
    pub config_id: ConfigId,
    pub from: u64,
    pub to: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// RFC 6902 operations turning `from` into `to`.
    pub patch: Value,
}

impl ConfigService {
    pub async fn config(&self, caller: &Caller, id: &ConfigId) -> Result<Arc<ConfigVersion>> {
        caller.require_on(Permission::Read, id.as_str())?;
        self.live_version(id).await
    }

    pub async fn list_configs(
        &self,
        caller: &Caller,
        prefix: Option<&str>,
    ) -> Result<Vec<ConfigSummary>> {
        caller.require(Permission::Read)?;
        Ok(self
            .store
            .configs()
            .heads()
            .await?
            .into_iter()
            .filter(|h| !h.deleted)
            .filter(|h| prefix.is_none_or(|p| h.latest.id.as_str().starts_with(p)))
            .filter(|h| caller.allows_resource(h.latest.id.as_str()))
            .map(|h| ConfigSummary {
                config_id: h.latest.id.clone(),
                version: h.latest.version,
                checksum: h.latest.checksum.clone(),
                updated_at: h.latest.created_at,
            })
            .collect())
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        id: &ConfigId,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<ConfigVersion>> {
        caller.require_on(Permission::Read, id.as_str())?;
        if self.store.configs().head(id).await?.is_none() {
            return Err(Error::not_found("config", id.as_str()));
        }
        let items = self.store.configs().versions(id, cursor, limit).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|v| v.version))
            .flatten()
            .filter(|v| *v > 1);
        Ok(Page { items, next_cursor })
    }

    pub async fn version(
        &self,
        caller: &Caller,
        id: &ConfigId,
        version: u64,
    ) -> Result<ConfigVersion> {
        caller.require_on(Permission::Read, id.as_str())?;
        self.stored_version(id, version).await
    }

    pub(crate) async fn stored_version(
        &self,
        id: &ConfigId,
        version: u64,
    ) -> Result<ConfigVersion> {
        if version == 0 {
            return Err(Error::invalid("version", "versions start at 1"));
        }
        self.store
            .version(id, version)
            .await?
            .ok_or_else(|| Error::not_found("version", format!("{id}@{version}")))
    }

    /// RFC 6902 patch from one version to another: of the whole document, or of the control
    /// view of one environment.
    /// `to` defaults to the latest version and `from` to the one before it.
    pub async fn diff(
        &self,
        caller: &Caller,
        id: &ConfigId,
        from: Option<u64>,
        to: Option<u64>,
        environment: Option<&Environment>,
    ) -> Result<DiffResult> {
        caller.require_on(Permission::Read, id.as_str())?;
        if let Some(environment) = environment {
            caller.require_environment(environment.as_str())?;
        }
        let to = match to {
            Some(to) => to,
            None => self.live_version(id).await?.version,
        };
        let from = from.unwrap_or(to.saturating_sub(1).max(1));
        let (old, new) = (
            self.stored_version(id, from).await?,
            self.stored_version(id, to).await?,
        );
        let patch = match environment {
            Some(env) => {
                let view = |v: &ConfigVersion| -> Result<Value> {
                    Ok(layers_of(v)?.for_env(Some(env.as_str())).control.value())
                };
                diff(&view(&old)?, &view(&new)?)
            }
            None => {
                let doc =
                    |v: &ConfigVersion| serde_json::to_value(&v.document).map_err(Error::internal);
                diff(&doc(&old)?, &doc(&new)?)
            }
        };
        Ok(DiffResult {
            config_id: id.clone(),
            from,
            to,
            environment: environment.map(|e| e.to_string()),
            patch,
        })
    }

    /// The effective config for an environment and a caller, answered from the read cache.
    #[tracing::instrument(level = "debug", name = "config.effective", skip_all, fields(config = %id))]
    pub async fn effective(
        &self,
        caller: &Caller,
        id: &ConfigId,
        query: EffectiveQuery,
    ) -> Result<EffectiveConfig> {
        caller.require_on(Permission::Read, id.as_str())?;
        caller.require_readable_environment(query.environment.as_ref().map(Environment::as_str))?;
        if query.resolve_secrets {
            caller.require(Permission::ResolveSecrets)?;
        }
        let version = match cached_or_stored_head(&*self.cache, &*self.store, id).await? {
            Some(head) if !head.deleted => head.latest,
            _ => return Err(Error::not_found("config", id.as_str())),
        };
        let version = self.serving.served(
            &version,
            query.environment.as_ref().map(Environment::as_str),
            query.instance_id.as_deref(),
        );
        self.effective_of(caller, version, query).await
    }

    /// The effective config of one particular version (e.g. the one a change event names),
    /// from the cache when it is the latest, from the history otherwise.
    pub async fn effective_at(
        &self,
        caller: &Caller,
        id: &ConfigId,
        version: u64,
        query: &EffectiveQuery,
    ) -> Result<EffectiveConfig> {
        caller.require_on(Permission::Read, id.as_str())?;
        caller.require_readable_environment(query.environment.as_ref().map(Environment::as_str))?;
        if query.resolve_secrets {
            caller.require(Permission::ResolveSecrets)?;
        }
        let version = match self.store.configs().head(id).await? {
            Some(head) if head.latest.version == version => head.latest,
            _ => Arc::new(self.stored_version(id, version).await?),
        };
        self.effective_of(caller, version, query.clone()).await
    }

    async fn effective_of(
        &self,
        caller: &Caller,
        version: Arc<ConfigVersion>,
        query: EffectiveQuery,
    ) -> Result<EffectiveConfig> {
        let env = query.environment.as_ref().map(Environment::as_str);
        let view = select(&version, env, &query.assignment, Utc::now)?;
        let resolved = if query.resolve_secrets {
            // A stored secret is read only by whoever's id scope reaches it, at any depth of a
            // chain; every provider bounds its own waits, so a failure names the reference.
            let reader = |secret: &SecretRef<'_>| readable_by(caller, secret);
            Some(
                self.secrets
                    .resolve_owned_for(view.value(), &reader)
                    .await?,
            )
        } else {
            None
        };
        Ok(EffectiveConfig {
            source: version,
            environment: query.environment,
            view,
            resolved,
            stale: self.cache.degraded(),
        })
    }

    /// Audit records of one config (or flag), or of everything, newest first.
    pub async fn audit(
        &self,
        caller: &Caller,
        subject: Option<AuditSubject>,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        caller.require(Permission::Read)?;
        match &subject {
            Some(subject) => caller.require_resource(subject.id())?,
            None => caller.require_unscoped_ids()?,
        }
        let items = self
            .store
            .audit(AuditQuery {
                subject,
                before: cursor,
                limit,
            })
            .await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|r| r.id))
            .flatten();
        Ok(Page { items, next_cursor })
    }
}

/// Whether `caller`, resolving a config's secrets, may read the one `secret` names: a stored
/// secret must lie within its id scope (as `GET /api/v1/secrets/{name}/value` requires); the
/// other providers' values are governed where they are kept.
fn readable_by(caller: &Caller, secret: &SecretRef<'_>) -> Result<()> {
    if secret.provider != "store" {
        return Ok(());
    }
    match referenced_name(secret.reference) {
        Some(name) => caller.require_on(Permission::ResolveSecrets, name.as_str()),
        // Malformed: the provider refuses it with the reason.
        None => Ok(()),
    }
}

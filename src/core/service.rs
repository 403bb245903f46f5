//! `ConfigService`: the operations both transports call. No HTTP, gRPC or SQL types here.

use super::access::{Caller, Permission};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::approvals::model::{ChangeOperation, ChangeRequest};
use super::checksum::checksum;
use super::drift::{ConfigDrift, DriftSummary, assess};
use super::effective::LayerValue;
use super::effective::{
    AssignmentInput, EffectiveDocument, EffectiveJson, Rendered, changed_environments,
    document_etag, effective_document, layers_of, select,
};
use super::error::{Error, Result, Violation};
use super::events::{ChangeBus, ChangeEvent, kind};
use super::ids::{ConfigId, Environment};
use super::merge::diff;
use super::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigDocument, ConfigSummary, ConfigVersion, Metadata,
    NewVersion, Page, SchemaVersion,
};
use super::ports::{
    AppliedRequest, AuditQuery, AuditSubject, Committed, DeleteWrite, ReadCache, SchemaWrite,
    Storage, Store, VersionWrite,
};
use super::secrets::SecretResolver;
use super::validation::{CompiledSchema, check_document, check_metadata};
use super::watch::{WatchFilter, WatchStream, watch};

const WRITE_LOCK_SHARDS: usize = 64;
const SECRET_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// An instance that has not reported for this long is `stale`.
    pub stale_after: Duration,
    /// Events buffered per watcher before it is caught up from the change log instead.
    pub watch_buffer: usize,
    /// Concurrent watchers; more are refused as unavailable.
    pub max_watchers: usize,
    /// Approvals a change needs, by protected environment; others are applied at once.
    pub protected_environments: BTreeMap<String, u32>,
}

/// What a write did: committed, or (touching a protected environment) waiting for approvals.
#[derive(Debug, Clone)]
pub enum Written<T> {
    Done(T),
    Pending(Box<ChangeRequest>),
}

/// Page size of list operations: 50 when not given, at most 500.
pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(50),
        Some(limit @ 1..=500) => Ok(limit),
        Some(_) => Err(Error::invalid("limit", "limit must be between 1 and 500")),
    }
}

/// A checked write, with the views its checks built (reused for the schema).
struct ProposedVersion<'a> {
    doc: ConfigDocument,
    layers: &'a [LayerValue],
    metadata: Metadata,
    rollback_of: Option<u64>,
    /// Set when applying an approved change request (no further approval is asked).
    applies: Option<AppliedRequest>,
}

/// What a read of the effective config returns.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    pub config_id: ConfigId,
    pub version: u64,
    pub environment: Option<Environment>,
    /// The selected view: effective config, checksum, which layers applied.
    pub view: Arc<Rendered>,
    /// The config with secrets resolved, only when asked for.
    pub resolved: Option<Value>,
    /// The database did not answer lately: this comes from the cache and may be out of date.
    pub stale: bool,
}

impl EffectiveConfig {
    /// The effective document as JSON and its strong ETag: pre-rendered unless secrets were
    /// resolved or the caller named an environment that has no layer of its own.
    pub fn document(&self) -> (Bytes, Cow<'_, str>) {
        let environment = self.environment.as_ref().map(Environment::as_str);
        if self.resolved.is_none() && self.view.environment.as_deref() == environment {
            return (self.view.document.clone(), Cow::Borrowed(&self.view.etag));
        }
        let document = effective_document(&EffectiveDocument {
            config_id: self.config_id.as_str(),
            version: self.version,
            environment,
            effective_config: match &self.resolved {
                Some(resolved) => EffectiveJson::Resolved(resolved),
                None => EffectiveJson::Rendered(&self.view.json),
            },
            checksum: &self.view.checksum,
            assignment: &self.view.assignment,
        });
        let etag = document_etag(&document);
        (Bytes::from(document), Cow::Owned(etag))
    }
}

#[derive(Debug, Clone)]
pub struct EffectiveQuery {
    pub environment: Option<Environment>,
    pub assignment: AssignmentInput,
    pub resolve_secrets: bool,
}

/// An instance's report, as received.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppliedReport {
    pub environment: String,
    pub instance_id: String,
    pub version: u64,
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u64>,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub summary: DriftSummary,
    pub configs: Vec<ConfigDrift>,
}

pub struct ConfigService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<dyn ReadCache>,
    bus: ChangeBus,
    secrets: SecretResolver,
    write_locks: Vec<tokio::sync::Mutex<()>>,
    watchers: Arc<tokio::sync::Semaphore>,
    pub(crate) settings: ServiceSettings,
}

/// Timestamps are kept to the microsecond, the precision every store keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl ConfigService {
    pub fn new(storage: Storage, secrets: SecretResolver, settings: ServiceSettings) -> Self {
        ConfigService {
            store: storage.store,
            cache: storage.cache,
            bus: ChangeBus::new(settings.watch_buffer.max(1024)),
            secrets,
            watchers: Arc::new(tokio::sync::Semaphore::new(settings.max_watchers)),
            write_locks: (0..WRITE_LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            settings,
        }
    }

    /// Runs a commit to its end even if the caller goes away (a dropped request must not leave
    /// the store committed and the cache and watchers uninformed), then publishes its event.
    pub(crate) async fn commit<F>(&self, commit: F) -> Result<Committed>
    where
        F: Future<Output = Result<Committed>> + Send + 'static,
    {
        // With replicas, the follower publishes every change (this replica's too) once the
        // cache holds it, so watchers never run ahead of what reads here return.
        let bus = (!self.store.shared_by_replicas()).then(|| self.bus.clone());
        tokio::spawn(async move {
            let committed = commit.await?;
            if let Some(bus) = bus {
                bus.publish(committed.event.clone());
                if let Some(follow_up) = &committed.follow_up {
                    bus.publish(follow_up.clone());
                }
            }
            Ok(committed)
        })
        .await
        .map_err(|join| Error::internal(format!("commit task failed: {join}")))?
    }

    /// Writes fail fast while a shared database is known to be down (the replication follower
    /// notices when it is back); they are not queued or retried behind the caller's back.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.store.shared_by_replicas() && self.cache.degraded() {
            return Err(Error::Unavailable {
                reason: "the configuration store is unavailable; writes are refused until it \
                         answers again (reads are served from cache)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Serialises writes to one config within this process.
    async fn lock(&self, id: &ConfigId) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        self.write_locks[(hasher.finish() as usize) % WRITE_LOCK_SHARDS]
            .lock()
            .await
    }

    async fn live_version(&self, id: &ConfigId) -> Result<Arc<ConfigVersion>> {
        match self.store.head(id).await? {
            Some(head) if !head.deleted => Ok(head.latest),
            _ => Err(Error::not_found("config", id.as_str())),
        }
    }

    // ---- schemas -------------------------------------------------------------------------

    pub async fn put_schema(
        &self,
        caller: &Caller,
        id: &ConfigId,
        schema: Value,
        metadata: Metadata,
    ) -> Result<SchemaVersion> {
        caller.require_on(Permission::Write, id.as_str())?;
        check_metadata(&metadata)?;
        self.ensure_writable()?;
        // A schema binds every environment's views.
        self.check_environment_scope(&metadata, &["*".to_owned()], id.as_str())
            .await?;
        let compiled = CompiledSchema::compile(&schema)?;
        match self
            .try_put_schema(id, &compiled, schema.clone(), metadata.clone())
            .await
        {
            // Another replica changed the config or schema meanwhile: check against the new
            // state once more (the cache was refreshed by the conflict).
            Err(Error::ConcurrentModification { .. }) => {
                self.try_put_schema(id, &compiled, schema, metadata).await
            }
            other => other,
        }
    }

    async fn try_put_schema(
        &self,
        id: &ConfigId,
        compiled: &CompiledSchema,
        schema: Value,
        metadata: Metadata,
    ) -> Result<SchemaVersion> {
        let _guard = self.lock(id).await;
        let head = self.store.head(id).await?.filter(|h| !h.deleted);
        if let Some(head) = &head {
            let violations = compiled.check(&head.latest.document, &self.secrets);
            if !violations.is_empty() {
                return Err(Error::SchemaViolation { violations });
            }
        }
        let current = self.store.schema(id).await?;
        let write = SchemaWrite {
            config_id: id.clone(),
            checksum: checksum(&schema),
            schema: schema.clone(),
            metadata: metadata.clone(),
            created_at: now(),
            expected_schema: current.as_ref().map_or(0, |s| s.version),
            expected_live: head.as_ref().map_or(0, |h| h.latest.version),
            audit: AuditDraft {
                actor: metadata.actor.clone(),
                action: "schema.put",
                environments: vec!["*".into()],
                message: metadata.message.clone(),
                on_behalf_of: metadata.on_behalf_of.clone(),
            },
        };
        let (checksum, created_at) = (write.checksum.clone(), write.created_at);
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.put_schema(write).await })
            .await?;
        Ok(SchemaVersion {
            config_id: id.clone(),
            version: committed.version,
            schema,
            checksum,
            metadata,
            created_at,
        })
    }

    pub async fn schema(&self, caller: &Caller, id: &ConfigId) -> Result<SchemaVersion> {
        caller.require_on(Permission::Read, id.as_str())?;
        self.store
            .schema(id)
            .await?
            .ok_or_else(|| Error::not_found("schema", id.as_str()))
    }

    /// Checks a candidate document against the shape rules and the registered schema.
    pub async fn validate(
        &self,
        caller: &Caller,
        id: &ConfigId,
        doc: &ConfigDocument,
    ) -> Result<ValidationReport> {
        caller.require_on(Permission::Read, id.as_str())?;
        let schema = self.store.schema(id).await?;
        let violations = match (check_document(doc, &self.secrets), &schema) {
            (Ok(layers), Some(schema)) => {
                CompiledSchema::compile(&schema.schema)?.check_layers(&layers, &self.secrets)
            }
            (Ok(_), None) => Vec::new(),
            (Err(error @ Error::InvalidInput { .. }), _) => error.violations(),
            (Err(other), _) => return Err(other),
        };
        Ok(ValidationReport {
            valid: violations.is_empty(),
            schema_version: schema.map(|s| s.version),
            violations,
        })
    }

    // ---- versions ------------------------------------------------------------------------

    pub async fn put_config(
        &self,
        caller: &Caller,
        id: &ConfigId,
        doc: ConfigDocument,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<ConfigVersion>> {
        caller.require_on(Permission::Write, id.as_str())?;
        self.write_version(id, doc, metadata, expected, None, None)
            .await
    }

    pub async fn rollback(
        &self,
        caller: &Caller,
        id: &ConfigId,
        target: u64,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<ConfigVersion>> {
        caller.require_on(Permission::Write, id.as_str())?;
        if target == 0 {
            return Err(Error::invalid(
                "/targetVersion",
                "targetVersion must be at least 1",
            ));
        }
        let version = self
            .store
            .version(id, target)
            .await?
            .ok_or_else(|| Error::not_found("version", format!("{id}@{target}")))?;
        self.write_version(id, version.document, metadata, expected, Some(target), None)
            .await
    }

    pub(crate) async fn write_version(
        &self,
        id: &ConfigId,
        doc: ConfigDocument,
        metadata: Metadata,
        expected: Option<u64>,
        rollback_of: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<ConfigVersion>> {
        check_metadata(&metadata)?;
        let layers = check_document(&doc, &self.secrets)?;
        self.ensure_writable()?;
        let write = || ProposedVersion {
            doc: doc.clone(),
            layers: &layers,
            metadata: metadata.clone(),
            rollback_of,
            applies: applies.clone(),
        };
        match self.try_write_version(id, write(), expected).await {
            // Without a precondition, losing a race to another writer is not the caller's
            // conflict: validate against the new head and try once more.
            Err(Error::VersionConflict { .. } | Error::ConcurrentModification { .. })
                if expected.is_none() =>
            {
                self.try_write_version(id, write(), None).await
            }
            other => other,
        }
    }

    async fn try_write_version(
        &self,
        id: &ConfigId,
        proposed: ProposedVersion<'_>,
        expected: Option<u64>,
    ) -> Result<Written<ConfigVersion>> {
        let ProposedVersion {
            doc,
            layers,
            metadata,
            rollback_of,
            applies,
        } = proposed;
        let _guard = self.lock(id).await;
        let mut head = self.store.head(id).await?;
        let mut live = head.as_ref().map_or(0, |h| h.live_version());
        if expected.is_some_and(|e| e != live) && self.store.shared_by_replicas() {
            // This replica's cache may lag a write made through another: ask the database
            // before calling it a conflict.
            head = self.cache.fresh_head(id).await?;
            live = head.as_ref().map_or(0, |h| h.live_version());
        }
        if let Some(expected) = expected
            && expected != live
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        let schema = self.store.schema(id).await?;
        if let Some(schema) = &schema {
            let violations =
                CompiledSchema::compile(&schema.schema)?.check_layers(layers, &self.secrets);
            if !violations.is_empty() {
                return Err(Error::SchemaViolation { violations });
            }
        }
        let previous = head
            .as_ref()
            .filter(|h| !h.deleted)
            .map(|h| &h.latest.document);
        let audit = AuditDraft {
            actor: metadata.actor.clone(),
            action: if rollback_of.is_some() {
                "config.rollback"
            } else {
                "config.put"
            },
            environments: changed_environments(previous, &doc),
            message: metadata.message.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
        };
        self.check_environment_scope(&metadata, &audit.environments, id.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.approvals_needed(&audit.environments)
        {
            let operation = match rollback_of {
                Some(target_version) => ChangeOperation::Rollback { target_version },
                None => ChangeOperation::Put {
                    document: Box::new(doc),
                },
            };
            return self
                .request_change(id, operation, live, protected, required, &metadata)
                .await
                .map(|request| Written::Pending(Box::new(request)));
        }
        let new_version = NewVersion {
            config_id: id.clone(),
            checksum: checksum(&doc.config),
            document: doc,
            metadata,
            created_at: now(),
            rollback_of,
        };
        let write = VersionWrite {
            version: new_version.clone(),
            expected_live: live,
            expected_schema: schema.map_or(0, |s| s.version),
            audit,
            applies,
        };
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.append_version(write).await })
            .await?;
        Ok(Written::Done(new_version.numbered(committed.version)))
    }

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
            .heads()
            .await?
            .into_iter()
            .filter(|h| !h.deleted)
            .filter(|h| prefix.is_none_or(|p| h.latest.config_id.as_str().starts_with(p)))
            .filter(|h| caller.allows_resource(h.latest.config_id.as_str()))
            .map(|h| ConfigSummary {
                config_id: h.latest.config_id.clone(),
                version: h.latest.version,
                checksum: h.latest.checksum.clone(),
                updated_at: h.latest.created_at,
            })
            .collect())
    }

    pub async fn delete_config(
        &self,
        caller: &Caller,
        id: &ConfigId,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<u64>> {
        caller.require_on(Permission::Write, id.as_str())?;
        self.delete_applying(id, metadata, expected, None).await
    }

    pub(crate) async fn delete_applying(
        &self,
        id: &ConfigId,
        metadata: Metadata,
        expected: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<u64>> {
        check_metadata(&metadata)?;
        self.ensure_writable()?;
        let attempt = self
            .try_delete(id, metadata.clone(), expected, applies.clone())
            .await;
        match attempt {
            // Without a precondition, losing a race to another replica is not a conflict.
            Err(Error::VersionConflict { .. }) if expected.is_none() => {
                self.try_delete(id, metadata, None, applies).await
            }
            other => other,
        }
    }

    async fn try_delete(
        &self,
        id: &ConfigId,
        metadata: Metadata,
        expected: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<u64>> {
        let _guard = self.lock(id).await;
        let mut live = self.live_version(id).await?.version;
        if expected.is_some_and(|e| e != live) && self.store.shared_by_replicas() {
            // This replica's cache may lag another's write: ask the database first.
            live = match self.cache.fresh_head(id).await? {
                Some(head) if !head.deleted => head.latest.version,
                _ => return Err(Error::not_found("config", id.as_str())),
            };
        }
        if let Some(expected) = expected
            && expected != live
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        let everywhere = vec!["*".to_owned()];
        self.check_environment_scope(&metadata, &everywhere, id.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.approvals_needed(&everywhere)
        {
            return self
                .request_change(
                    id,
                    ChangeOperation::Delete,
                    live,
                    protected,
                    required,
                    &metadata,
                )
                .await
                .map(|request| Written::Pending(Box::new(request)));
        }
        let write = DeleteWrite {
            config_id: id.clone(),
            expected_live: live,
            audit: AuditDraft {
                actor: metadata.actor,
                action: "config.delete",
                environments: vec!["*".into()],
                message: metadata.message,
                on_behalf_of: metadata.on_behalf_of.clone(),
            },
            at: now(),
            applies,
        };
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.delete_config(write).await })
            .await?;
        Ok(Written::Done(committed.version))
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        id: &ConfigId,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<ConfigVersion>> {
        caller.require_on(Permission::Read, id.as_str())?;
        if self.store.head(id).await?.is_none() {
            return Err(Error::not_found("config", id.as_str()));
        }
        let items = self.store.versions(id, cursor, limit).await?;
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
                let view =
                    |v: &ConfigVersion| layers_of(v).for_env(Some(env.as_str())).control.value();
                diff(&view(&old), &view(&new))
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

    // ---- reads ---------------------------------------------------------------------------

    /// The effective config for an environment and a caller, answered from the read cache.
    pub async fn effective(
        &self,
        caller: &Caller,
        id: &ConfigId,
        query: &EffectiveQuery,
    ) -> Result<EffectiveConfig> {
        caller.require_on(Permission::Read, id.as_str())?;
        caller.require_readable_environment(query.environment.as_ref().map(Environment::as_str))?;
        if query.resolve_secrets {
            caller.require(Permission::ResolveSecrets)?;
        }
        // The read cache answers without I/O; only a miss takes the asynchronous path.
        let head = match self.cache.cached_head(id) {
            Some(head) => Some(head),
            None => self.store.head(id).await?,
        };
        let version = match head {
            Some(head) if !head.deleted => head.latest,
            _ => return Err(Error::not_found("config", id.as_str())),
        };
        self.effective_of(version, query).await
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
        let version = match self.store.head(id).await? {
            Some(head) if head.latest.version == version => head.latest,
            _ => Arc::new(self.stored_version(id, version).await?),
        };
        self.effective_of(version, query).await
    }

    async fn effective_of(
        &self,
        version: Arc<ConfigVersion>,
        query: &EffectiveQuery,
    ) -> Result<EffectiveConfig> {
        let env = query.environment.as_ref().map(Environment::as_str);
        let view = select(&version, env, &query.assignment, Utc::now())?;
        let resolved = if query.resolve_secrets {
            Some(self.resolve_secrets(view.value()).await?)
        } else {
            None
        };
        Ok(EffectiveConfig {
            config_id: version.config_id.clone(),
            version: version.version,
            environment: query.environment.clone(),
            view,
            resolved,
            stale: self.cache.degraded(),
        })
    }

    /// Providers read files and the environment: off the async workers, with a deadline.
    async fn resolve_secrets(&self, value: Value) -> Result<Value> {
        let resolver = self.secrets.clone();
        let resolving = tokio::task::spawn_blocking(move || resolver.resolve_owned(value));
        match tokio::time::timeout(SECRET_DEADLINE, resolving).await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(join)) => Err(Error::internal(format!("secret resolution failed: {join}"))),
            Err(_) => Err(Error::Unavailable {
                reason: "secret resolution timed out".into(),
            }),
        }
    }

    // ---- audit, applied state, drift -----------------------------------------------------

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

    pub async fn record_applied(
        &self,
        caller: &Caller,
        id: &ConfigId,
        report: AppliedReport,
    ) -> Result<ConfigDrift> {
        caller.require_on(Permission::ReportApplied, id.as_str())?;
        Environment::parse_field(&report.environment, "/environment")?;
        caller.require_environment(&report.environment)?;
        if report.instance_id.is_empty()
            || report.instance_id.len() > 256
            || report.instance_id.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "/instanceId",
                "instanceId must be 1 to 256 printable characters",
            ));
        }
        let is_hex = report.checksum.len() == 64
            && report
                .checksum
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex {
            return Err(Error::invalid(
                "/checksum",
                "checksum must be 64 lowercase hex digits",
            ));
        }
        if report.version == 0 || report.version > i64::MAX as u64 {
            return Err(Error::invalid(
                "/version",
                "version must be between 1 and 9223372036854775807",
            ));
        }
        let current = self.live_version(id).await?;
        let state = AppliedState {
            config_id: id.clone(),
            environment: report.environment,
            instance_id: report.instance_id,
            version: report.version,
            checksum: report.checksum,
            reported_at: now(),
        };
        self.store.record_applied(state.clone()).await?;
        Ok(assess(
            &current,
            vec![state],
            self.settings.stale_after,
            Utc::now(),
        ))
    }

    pub async fn drift(
        &self,
        caller: &Caller,
        id: &ConfigId,
        environment: Option<&Environment>,
    ) -> Result<ConfigDrift> {
        caller.require_on(Permission::Read, id.as_str())?;
        if let Some(environment) = environment {
            caller.require_environment(environment.as_str())?;
        }
        let current = self.live_version(id).await?;
        let reports = self
            .store
            .applied(Some(id))
            .await?
            .into_iter()
            .filter(|r| environment.is_none_or(|e| r.environment == e.as_str()))
            .collect();
        Ok(assess(
            &current,
            reports,
            self.settings.stale_after,
            Utc::now(),
        ))
    }

    pub async fn drift_report(&self, caller: &Caller) -> Result<DriftReport> {
        caller.require(Permission::Read)?;
        caller.require_unscoped_ids()?;
        let mut by_config: BTreeMap<ConfigId, Vec<AppliedState>> = BTreeMap::new();
        for report in self.store.applied(None).await? {
            by_config
                .entry(report.config_id.clone())
                .or_default()
                .push(report);
        }
        let mut summary = DriftSummary::default();
        let mut configs = Vec::new();
        for (id, reports) in by_config {
            let Some(head) = self.store.head(&id).await?.filter(|h| !h.deleted) else {
                continue;
            };
            let drift = assess(&head.latest, reports, self.settings.stale_after, Utc::now());
            summary.in_sync += drift.summary.in_sync;
            summary.drifted += drift.summary.drifted;
            summary.stale += drift.summary.stale;
            configs.push(drift);
        }
        Ok(DriftReport { summary, configs })
    }

    // ---- change events -------------------------------------------------------------------

    /// Change events matching `filter`, from `from_revision` (exclusive) or from now on;
    /// gap-free and duplicate-free, backed by the store's change log.
    pub async fn watch(
        &self,
        caller: &Caller,
        filter: WatchFilter,
        from_revision: Option<u64>,
    ) -> Result<WatchStream> {
        filter.authorize(caller)?;
        let permit = self
            .watchers
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                reason: format!(
                    "the server already serves {} watchers; retry later",
                    self.settings.max_watchers
                ),
            })?;
        watch(
            Storage {
                store: self.store.clone(),
                cache: self.cache.clone(),
            },
            &self.bus,
            filter,
            from_revision,
            self.settings.watch_buffer,
            permit,
        )
        .await
    }

    /// The current state of every config `filter` matches, as `config.updated` events at
    /// `revision`, read from the database (a replica's cache may lag the revision just read).
    pub async fn watch_snapshot(
        &self,
        caller: &Caller,
        filter: &WatchFilter,
        revision: u64,
    ) -> Result<Vec<ChangeEvent>> {
        filter.authorize(caller)?;
        if !filter.wants_configs() {
            return Ok(Vec::new());
        }
        let heads = if filter.config_ids.is_empty() || filter.prefix.is_some() {
            self.cache.fresh_heads().await?
        } else {
            let mut heads = Vec::new();
            for id in &filter.config_ids {
                heads.extend(self.cache.fresh_head(&ConfigId::parse(id)?).await?);
            }
            heads
        };
        Ok(heads
            .into_iter()
            .filter(|head| !head.deleted)
            .map(|head| ChangeEvent {
                revision,
                kind: kind::CONFIG_UPDATED.into(),
                config_id: head.latest.config_id.to_string(),
                version: head.latest.version,
                checksum: head.latest.checksum.clone(),
                actor: head.latest.metadata.actor.clone(),
                message: head.latest.metadata.message.clone(),
                at: head.latest.created_at,
            })
            .filter(|event| filter.matches(event))
            .collect())
    }

    pub async fn latest_revision(&self) -> Result<u64> {
        self.store.latest_revision().await
    }

    /// Publishes an event committed elsewhere (e.g. by another replica) to local watchers.
    pub fn publish(&self, event: ChangeEvent) {
        self.bus.publish(event);
    }

    /// The database did not answer lately: reads answered from the cache may be out of date.
    pub fn serving_stale(&self) -> bool {
        self.cache.degraded()
    }

    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await
    }
}

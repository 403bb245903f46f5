//! `FlagService`: flag writes (versioned, audited, checked) and evaluation, for both transports.

use crate::core::access::{Caller, Permission};
use crate::core::ids::Touched;
use crate::core::ports::Documents;
use crate::core::versioned::Document;
use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::compile::compile;
use super::evaluate::{Evaluation, EvaluationContext, MAX_PREREQUISITE_DEPTH, evaluate};
use super::model::{
    FlagDefinition, FlagHead, FlagSet, FlagVersion, NewFlagVersion, Rule, changed_environments,
};
use crate::core::approvals::model::{ChangeOperation, Proposal, Subject};
use crate::core::approvals::service::Applying;
use crate::core::error::{Error, Result};
use crate::core::ids::{Environment, FlagKey};
use crate::core::model::{AuditDraft, AuditRecord, Metadata, Page};
use crate::core::ports::{
    AppliedRequest, AuditSubject, FlagDeleteWrite, FlagWrite, ReadCache, Storage, Store,
};
use crate::core::service::{ConfigService, Written, now};
use crate::core::validation::check_metadata;

/// At most this many flags in one batch evaluation request.
pub const MAX_BATCH: usize = 1000;

/// Where an evaluation happens: the environment (its targeting) and the asking service.
#[derive(Debug, Clone, Default)]
pub struct EvaluationScope {
    pub environment: Option<Environment>,
    /// Bulk evaluation lists only flags meant for this service.
    pub service: Option<String>,
}

pub struct FlagService {
    store: Arc<dyn Store>,
    cache: Arc<dyn ReadCache>,
    /// Commits and publishes through the same path as config writes (one change log, one bus).
    configs: Arc<ConfigService>,
    write_lock: tokio::sync::Mutex<()>,
}

/// Every rule of a definition with the JSON pointer of its `rules` array.
fn rules_of(definition: &FlagDefinition) -> impl Iterator<Item = (String, usize, &Rule)> {
    let fallback = definition
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| ("/rules".to_owned(), i, rule));
    let environments = definition.environments.iter().flat_map(|(env, targeting)| {
        targeting
            .rules
            .iter()
            .enumerate()
            .map(move |(i, rule)| (format!("/environments/{env}/rules"), i, rule))
    });
    fallback.chain(environments)
}

impl FlagService {
    pub fn new(storage: Storage, configs: Arc<ConfigService>) -> Self {
        FlagService {
            store: storage.store,
            cache: storage.cache,
            configs,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every flag's head, from the read cache.
    pub async fn flag_set(&self) -> Result<Arc<FlagSet>> {
        Ok(self.cache.cached_flags())
    }

    /// Refuses prerequisites on missing flags or variants, and cycles through `key`.
    fn check_prerequisites(
        set: &FlagSet,
        key: &FlagKey,
        definition: &FlagDefinition,
    ) -> Result<()> {
        for (rules, index, rule) in rules_of(definition) {
            for (p, prerequisite) in rule.prerequisites.iter().enumerate() {
                let at = format!("{rules}/{index}/prerequisites/{p}");
                let Some(required) = set.live(&prerequisite.flag_key) else {
                    return Err(Error::invalid(
                        format!("{at}/flagKey"),
                        format!("no flag named '{}'", prerequisite.flag_key),
                    ));
                };
                for (v, variant) in prerequisite.variants.iter().enumerate() {
                    if !required.document.variants.contains_key(variant) {
                        return Err(Error::invalid(
                            format!("{at}/variants/{v}"),
                            format!(
                                "flag '{}' has no variant named '{variant}'",
                                prerequisite.flag_key
                            ),
                        ));
                    }
                }
                if Self::chain_depth(set, &prerequisite.flag_key, &mut Vec::new()) + 1
                    > MAX_PREREQUISITE_DEPTH
                {
                    return Err(Error::invalid(
                        format!("{at}/flagKey"),
                        format!(
                            "prerequisite chains may be at most {MAX_PREREQUISITE_DEPTH} flags deep"
                        ),
                    ));
                }
                if Self::depends_on(set, &prerequisite.flag_key, key, &mut HashSet::new()) {
                    return Err(Error::invalid(
                        format!("{at}/flagKey"),
                        format!(
                            "flag '{}' already depends on '{key}': prerequisites may not form a cycle",
                            prerequisite.flag_key
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// How many prerequisite hops deep the chain below `from` goes (0: no prerequisites).
    fn chain_depth<'a>(set: &'a FlagSet, from: &'a str, path: &mut Vec<&'a str>) -> usize {
        if path.contains(&from) || path.len() > MAX_PREREQUISITE_DEPTH {
            return path.len(); // a cycle or already too deep: deep enough to refuse
        }
        let Some(flag) = set.live(from) else {
            return 0;
        };
        path.push(from);
        let deepest = rules_of(&flag.document)
            .flat_map(|(_, _, rule)| rule.prerequisites.iter())
            .map(|p| 1 + Self::chain_depth(set, &p.flag_key, path))
            .max()
            .unwrap_or(0);
        path.pop();
        deepest
    }

    /// Whether `from` reaches `target` through prerequisites of the live flags in `set`.
    fn depends_on<'a>(
        set: &'a FlagSet,
        from: &'a str,
        target: &FlagKey,
        seen: &mut HashSet<&'a str>,
    ) -> bool {
        if from == target.as_str() {
            return true;
        }
        if !seen.insert(from) {
            return false;
        }
        let Some(flag) = set.live(from) else {
            return false;
        };
        rules_of(&flag.document)
            .flat_map(|(_, _, rule)| rule.prerequisites.iter())
            .any(|p| Self::depends_on(set, &p.flag_key, target, seen))
    }

    /// Creates or updates a flag: a new immutable version.
    pub async fn put_flag(
        &self,
        caller: &Caller,
        key: &FlagKey,
        definition: FlagDefinition,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<Arc<FlagVersion>>> {
        caller.require_on(Permission::Write, key.as_str())?;
        self.write(key, definition, metadata, expected, None, None)
            .await
    }

    /// A new version equal to `target`, recording `rollbackOf`.
    pub async fn rollback(
        &self,
        caller: &Caller,
        key: &FlagKey,
        target: u64,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<Arc<FlagVersion>>> {
        caller.require_on(Permission::Write, key.as_str())?;
        if target == 0 {
            return Err(Error::invalid(
                "/targetVersion",
                "targetVersion must be at least 1",
            ));
        }
        let version = self.stored_version(key, target).await?;
        self.write(
            key,
            version.document,
            metadata,
            expected,
            Some(target),
            None,
        )
        .await
    }

    /// Applies an approved flag request (`approvals::apply`): the version (or delete) and the
    /// request's `applied` state commit together.
    pub(crate) async fn apply_flag(&self, key: &FlagKey, applying: &Applying) -> Result<u64> {
        let Applying {
            request,
            metadata,
            applies,
        } = applying;
        let (metadata, applies) = (metadata.clone(), Some(applies.clone()));
        let expected = Some(request.base_version);
        let written = match &request.operation {
            ChangeOperation::Put { document } => {
                let Proposal::Flag(definition) = &**document else {
                    return Err(Error::internal(format!(
                        "change request {} proposes a config document for flag '{key}'",
                        request.id
                    )));
                };
                self.write(key, definition.clone(), metadata, expected, None, applies)
                    .await?
                    .map(|version| version.version)
            }
            ChangeOperation::Rollback { target_version } => {
                let target = self.stored_version(key, *target_version).await?;
                let rollback_of = Some(*target_version);
                self.write(
                    key,
                    target.document,
                    metadata,
                    expected,
                    rollback_of,
                    applies,
                )
                .await?
                .map(|version| version.version)
            }
            ChangeOperation::Delete => self.delete(key, metadata, expected, applies).await?,
        };
        written.done()
    }

    async fn write(
        &self,
        key: &FlagKey,
        definition: FlagDefinition,
        metadata: Metadata,
        expected: Option<u64>,
        rollback_of: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<Arc<FlagVersion>>> {
        let attempt = || {
            self.try_write(
                key,
                definition.clone(),
                metadata.clone(),
                expected,
                rollback_of,
                applies.clone(),
            )
        };
        match attempt().await {
            // Without a precondition, losing a race (or a replica's cache lagging a write made
            // elsewhere) is not the caller's conflict: the cache was refreshed; try once more.
            Err(Error::VersionConflict { .. }) if expected.is_none() => attempt().await,
            other => other,
        }
    }

    async fn try_write(
        &self,
        key: &FlagKey,
        definition: FlagDefinition,
        metadata: Metadata,
        expected: Option<u64>,
        rollback_of: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<Arc<FlagVersion>>> {
        check_metadata(&metadata)?;
        if key.as_str() == "evaluate" {
            // `/api/v1/feature-flags/evaluate` is the evaluation endpoint.
            return Err(Error::invalid(
                "flagKey",
                "the flag key 'evaluate' is reserved",
            ));
        }
        let compiled = compile(key, &definition)?;
        self.configs.ensure_writable()?;
        // Flag writes are rare; one lock keeps the prerequisite-cycle check and the write
        // atomic within this process.
        let _guard = self.write_lock.lock().await;
        let set = self.flag_set().await?;
        Self::check_prerequisites(&set, key, &definition)?;
        let head = set.heads.get(key);
        let live = head.map_or(0, FlagHead::live_version);
        // A replica's cache may lag: leave the final word on a mismatch to the store.
        if let Some(expected) = expected
            && expected != live
            && !self.store.shared_by_replicas()
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        let previous = head.filter(|h| !h.deleted).map(|h| &h.latest.document);
        let touched = changed_environments(previous, &definition);
        let audit = AuditDraft {
            actor: metadata.actor.clone(),
            action: if rollback_of.is_some() {
                "flag.rollback"
            } else {
                "flag.put"
            },
            environments: touched.as_list(),
            message: metadata.message.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
        };
        self.configs
            .check_environment_scope(&metadata, &touched, key.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.configs.approvals_needed(&touched)
        {
            let operation = match rollback_of {
                Some(target_version) => ChangeOperation::Rollback { target_version },
                None => ChangeOperation::Put {
                    document: Box::new(Proposal::Flag(definition)),
                },
            };
            let subject = Subject::Flag(key.clone());
            return self
                .configs
                .request_change(subject, operation, live, protected, required, &metadata)
                .await
                .map(|request| Written::Pending(Box::new(request)));
        }
        let new_version = NewFlagVersion {
            id: key.clone(),
            checksum: definition.checksum()?,
            document: definition,
            metadata,
            created_at: now(),
            rollback_of,
        };
        let write = FlagWrite {
            version: new_version.clone(),
            expected_live: expected.unwrap_or(live),
            expected_schema: 0,
            audit,
            applies,
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.flags().append(write).await })
            .await?;
        let version = new_version.numbered(committed.version);
        version.keep_view::<std::result::Result<_, String>>(Ok(compiled));
        Ok(Written::Done(Arc::new(version)))
    }

    /// Deletes a flag (its history and audit stay). Refused while another flag names it as a
    /// prerequisite.
    pub async fn delete_flag(
        &self,
        caller: &Caller,
        key: &FlagKey,
        metadata: Metadata,
        expected: Option<u64>,
    ) -> Result<Written<u64>> {
        caller.require_on(Permission::Write, key.as_str())?;
        self.delete(key, metadata, expected, None).await
    }

    async fn delete(
        &self,
        key: &FlagKey,
        metadata: Metadata,
        expected: Option<u64>,
        applies: Option<AppliedRequest>,
    ) -> Result<Written<u64>> {
        check_metadata(&metadata)?;
        self.configs.ensure_writable()?;
        let _guard = self.write_lock.lock().await;
        let set = self.flag_set().await?;
        let live = set.heads.get(key).map_or(0, FlagHead::live_version);
        if live == 0 {
            return Err(Error::not_found("flag", key.as_str()));
        }
        let dependents: Vec<&str> = set
            .heads
            .values()
            .filter(|head| !head.deleted && head.latest.id != *key)
            .filter(|head| {
                rules_of(&head.latest.document).any(|(_, _, rule)| {
                    rule.prerequisites
                        .iter()
                        .any(|p| p.flag_key == key.as_str())
                })
            })
            .map(|head| head.latest.id.as_str())
            .collect();
        if !dependents.is_empty() {
            return Err(Error::Conflict {
                message: format!(
                    "flag '{key}' is a prerequisite of {}; remove those rules first",
                    dependents.join(", ")
                ),
            });
        }
        self.configs
            .check_environment_scope(&metadata, &Touched::Every, key.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.configs.approvals_needed(&Touched::Every)
        {
            let subject = Subject::Flag(key.clone());
            let operation = ChangeOperation::Delete;
            return self
                .configs
                .request_change(subject, operation, live, protected, required, &metadata)
                .await
                .map(|request| Written::Pending(Box::new(request)));
        }
        let write = FlagDeleteWrite {
            id: key.clone(),
            expected_live: expected.unwrap_or(live),
            audit: AuditDraft {
                actor: metadata.actor.clone(),
                action: "flag.delete",
                environments: Touched::Every.as_list(),
                message: metadata.message.clone(),
                on_behalf_of: metadata.on_behalf_of.clone(),
            },
            at: now(),
            applies,
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.flags().delete(write).await })
            .await?;
        Ok(Written::Done(committed.version))
    }

    pub async fn flag(&self, caller: &Caller, key: &FlagKey) -> Result<Arc<FlagVersion>> {
        caller.require_on(Permission::Read, key.as_str())?;
        self.flag_set()
            .await?
            .live(key.as_str())
            .cloned()
            .ok_or_else(|| Error::not_found("flag", key.as_str()))
    }

    /// Live flags by key, only those meant for `service` when given.
    pub async fn flags(
        &self,
        caller: &Caller,
        service: Option<&str>,
    ) -> Result<Vec<Arc<FlagVersion>>> {
        caller.require(Permission::Read)?;
        let set = self.flag_set().await?;
        Ok(live_flags(&set, service)
            .filter(|flag| caller.allows_resource(flag.id.as_str()))
            .cloned()
            .collect())
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        key: &FlagKey,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<FlagVersion>> {
        caller.require_on(Permission::Read, key.as_str())?;
        let items = self.store.flags().versions(key, cursor, limit).await?;
        if items.is_empty() && cursor.is_none() {
            return Err(Error::not_found("flag", key.as_str()));
        }
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|v| v.version))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub async fn version(
        &self,
        caller: &Caller,
        key: &FlagKey,
        version: u64,
    ) -> Result<FlagVersion> {
        caller.require_on(Permission::Read, key.as_str())?;
        self.stored_version(key, version).await
    }

    async fn stored_version(&self, key: &FlagKey, version: u64) -> Result<FlagVersion> {
        self.store
            .flags()
            .version(key, version)
            .await?
            .ok_or_else(|| Error::not_found("flag version", format!("{key}@{version}")))
    }

    pub async fn audit(
        &self,
        caller: &Caller,
        key: &FlagKey,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        self.configs
            .audit(caller, Some(AuditSubject::Flag(key.clone())), cursor, limit)
            .await
    }

    /// One flag's evaluation; an unknown flag is a `FLAG_NOT_FOUND` evaluation, not an error.
    pub async fn evaluate(
        &self,
        caller: &Caller,
        key: &str,
        scope: &EvaluationScope,
        context: &EvaluationContext,
    ) -> Result<Evaluation> {
        caller.require_on(Permission::Read, key)?;
        caller.require_readable_environment(scope.environment.as_ref().map(Environment::as_str))?;
        let set = self.flag_set().await?;
        let environment = scope.environment.as_ref().map(Environment::as_str);
        Ok(match set.live(key) {
            Some(flag) => evaluate(&set, flag, environment, context),
            None => Evaluation::not_found(key),
        })
    }

    /// The named flags (in the order given), or every flag meant for the scope's service.
    /// Flags outside the caller's id scope are left out (named or not).
    pub async fn evaluate_many(
        &self,
        caller: &Caller,
        keys: Option<&[String]>,
        scope: &EvaluationScope,
        context: &EvaluationContext,
    ) -> Result<Vec<Evaluation>> {
        caller.require(Permission::Read)?;
        let environment = scope.environment.as_ref().map(Environment::as_str);
        caller.require_readable_environment(environment)?;
        let set = self.flag_set().await?;
        Ok(match keys {
            Some(keys) => keys
                .iter()
                .filter(|key| caller.allows_resource(key))
                .map(|key| match set.live(key) {
                    Some(flag) => evaluate(&set, flag, environment, context),
                    None => Evaluation::not_found(key),
                })
                .collect(),
            None => live_flags(&set, scope.service.as_deref())
                .filter(|flag| caller.allows_resource(flag.id.as_str()))
                .map(|flag| evaluate(&set, flag, environment, context))
                .collect(),
        })
    }

    /// Whether answers come from a cache while the database does not answer.
    pub fn serving_stale(&self) -> bool {
        self.configs.serving_stale()
    }
}

fn live_flags<'a>(
    set: &'a FlagSet,
    service: Option<&'a str>,
) -> impl Iterator<Item = &'a Arc<FlagVersion>> + 'a {
    set.heads
        .values()
        .filter(|head| !head.deleted)
        .map(|head| &head.latest)
        .filter(move |flag| match service {
            Some(service) => {
                flag.document.services.is_empty()
                    || flag.document.services.iter().any(|s| s == service)
            }
            None => true,
        })
}

/// The evaluation context of a request body's `context` member (absent means empty).
pub fn context_of(body: Option<Value>, field: &str) -> Result<EvaluationContext> {
    EvaluationContext::from_json(body.unwrap_or(Value::Null), field)
}

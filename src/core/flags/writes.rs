//! Flag writes on `FlagService`: puts, rollbacks and deletes (versioned, audited, checked, and
//! turned into change requests when they reach a protected environment), and applying an
//! approved flag request.

use std::collections::HashSet;
use std::sync::Arc;

use super::compile::compile;
use super::evaluate::MAX_PREREQUISITE_DEPTH;
use super::model::{
    FlagDefinition, FlagHead, FlagSet, FlagVersion, NewFlagVersion, Rule, changed_environments,
};
use super::service::FlagService;
use crate::core::access::{Caller, Permission};
use crate::core::approvals::model::{ChangeOperation, Proposal, Subject};
use crate::core::approvals::service::Applying;
use crate::core::error::{Error, Result};
use crate::core::events::ChangeDetails;
use crate::core::ids::{FlagKey, Touched};
use crate::core::model::{AuditDraft, Metadata};
use crate::core::ports::{AppliedRequest, Documents, FlagDeleteWrite, FlagWrite};
use crate::core::service::{Written, now};
use crate::core::validation::check_metadata;
use crate::core::versioned::{Described, Document};

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
            ChangeOperation::Deploy(_) => {
                return Err(Error::internal(format!(
                    "change request {} proposes a deployment of flag '{key}'",
                    request.id
                )));
            }
        };
        written.done()
    }

    #[tracing::instrument(level = "debug", name = "flag.write", skip_all, fields(flag = %key))]
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
        let previous = head
            .filter(|h| !h.deleted)
            .map(|h| (h.latest.version, &h.latest.document));
        let touched = changed_environments(previous.map(|(_, doc)| doc), &definition);
        let Described { checksum, details } = definition.describe(previous)?;
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
            details,
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
            checksum,
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
            announce: Vec::new(),
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

    #[tracing::instrument(level = "debug", name = "flag.delete", skip_all, fields(flag = %key))]
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
                details: ChangeDetails::of_delete(live),
            },
            at: now(),
            applies,
            announce: Vec::new(),
        };
        let store = self.store.clone();
        let committed = self
            .configs
            .commit(async move { store.flags().delete(write).await })
            .await?;
        Ok(Written::Done(committed.version))
    }
}

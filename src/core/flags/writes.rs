//! Flag writes on `FlagService`: puts, rollbacks and deletes (versioned, audited, checked, and
//! turned into change requests when they reach a protected environment), and applying an
//! approved flag request.

use std::collections::{HashMap, HashSet};
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

/// How many prerequisite hops the chains through a flag being written go, among the live
/// flags of `set` (the flag itself as stored is left out: its new definition is the one
/// checked). Each flag's heights are worked out once, so a definition that names the same
/// prerequisite many times costs no more than naming it once. A cycle already stored (only
/// concurrent writes can close one) counts as too deep.
struct Depths<'a> {
    set: &'a FlagSet,
    writing: &'a str,
    below: HashMap<&'a str, usize>,
    above: HashMap<&'a str, usize>,
    /// The flags whose heights are being worked out: met again, they are a cycle.
    visiting: HashSet<&'a str>,
    /// The live flags naming each flag as a prerequisite, once `above` needs them.
    dependents: Option<HashMap<&'a str, Vec<&'a str>>>,
}

/// More hops than any chain may have: what a cycle counts as.
const TOO_DEEP: usize = MAX_PREREQUISITE_DEPTH + 1;

impl<'a> Depths<'a> {
    fn new(set: &'a FlagSet, writing: &'a str) -> Self {
        Depths {
            set,
            writing,
            below: HashMap::new(),
            above: HashMap::new(),
            visiting: HashSet::new(),
            dependents: None,
        }
    }

    /// The prerequisites each live flag other than the one being written names.
    fn prerequisites_of(&self, flag: &'a str) -> Vec<&'a str> {
        match self.set.live(flag) {
            Some(version) if flag != self.writing => rules_of(&version.document)
                .flat_map(|(_, _, rule)| rule.prerequisites.iter())
                .map(|p| p.flag_key.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How many hops the longest chain below `flag` goes (0: it names no prerequisite).
    fn below(&mut self, flag: &'a str) -> usize {
        if let Some(&known) = self.below.get(flag) {
            return known;
        }
        if !self.visiting.insert(flag) {
            return TOO_DEEP;
        }
        let mut deepest = 0;
        for prerequisite in self.prerequisites_of(flag) {
            deepest = deepest.max(1 + self.below(prerequisite)).min(TOO_DEEP);
        }
        self.visiting.remove(flag);
        self.below.insert(flag, deepest);
        deepest
    }

    /// How many hops the longest chain of live flags reaching `flag` goes (0: none names it).
    fn above(&mut self, flag: &'a str) -> usize {
        if let Some(&known) = self.above.get(flag) {
            return known;
        }
        if !self.visiting.insert(flag) {
            return TOO_DEEP;
        }
        if self.dependents.is_none() {
            let mut dependents: HashMap<&'a str, Vec<&'a str>> = HashMap::new();
            for dependent in self.set.heads.keys().map(FlagKey::as_str) {
                for prerequisite in self.prerequisites_of(dependent) {
                    dependents.entry(prerequisite).or_default().push(dependent);
                }
            }
            self.dependents = Some(dependents);
        }
        let dependents = self
            .dependents
            .as_ref()
            .and_then(|all| all.get(flag))
            .cloned()
            .unwrap_or_default();
        let mut highest = 0;
        for dependent in dependents {
            highest = highest.max(1 + self.above(dependent)).min(TOO_DEEP);
        }
        self.visiting.remove(flag);
        self.above.insert(flag, highest);
        highest
    }
}

impl FlagService {
    /// Refuses prerequisites on missing flags or variants, cycles through `key`, and chains
    /// (through `key`, above and below it) deeper than `MAX_PREREQUISITE_DEPTH`.
    fn check_prerequisites(
        set: &FlagSet,
        key: &FlagKey,
        definition: &FlagDefinition,
    ) -> Result<()> {
        let mut depths = Depths::new(set, key.as_str());
        // The longest chain of flags that reach `key`: a chain through it is that long above it.
        let above = depths.above(key.as_str());
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
                if above + 1 + depths.below(&prerequisite.flag_key) > MAX_PREREQUISITE_DEPTH {
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
        let request = &applying.request;
        let (metadata, applies, expected) = applying.write_parts();
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
            expected_number: None,
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
        let live_in = |set: &FlagSet| set.heads.get(key).map_or(0, FlagHead::live_version);
        if self.store.shared_by_replicas() && live_in(&*self.flag_set().await?) == 0 {
            // Created through another replica a moment ago, perhaps: read up to it first
            // (before the lock: other flag writes need not wait for it).
            self.configs.catch_up().await?;
        }
        let _guard = self.write_lock.lock().await;
        let set = self.flag_set().await?;
        let live = live_in(&set);
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
            return Err(Error::conflict(format!(
                "flag '{key}' is a prerequisite of {}; remove those rules first",
                dependents.join(", ")
            )));
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

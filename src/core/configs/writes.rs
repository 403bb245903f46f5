//! New versions (put, rollback), deletes, and the approval a protected environment asks for.

use chrono::{DateTime, Utc};

use super::{ConfigService, Written, now};
use crate::core::access::{Caller, Permission};
use crate::core::ids::Touched;
use crate::core::ports::Documents;
use crate::core::versioned::{Described, Document};

use crate::core::approvals::model::{ChangeOperation, Proposal, Subject};
use crate::core::effective::changed_environments;
use crate::core::error::{Error, Result};
use crate::core::events::{AffectedInstances, ChangeDetails, MAX_NAMED_INSTANCES};
use crate::core::ids::ConfigId;
use crate::core::model::{AuditDraft, ConfigDocument, ConfigVersion, Metadata, NewVersion};
use crate::core::ports::{AppliedRequest, DeleteWrite, VersionWrite};
use crate::core::validation::{DocumentViews, check_document, check_metadata};

/// A checked write, with its views (built by the checks or for the schema, once).
struct ProposedVersion<'a> {
    doc: &'a ConfigDocument,
    views: &'a DocumentViews<'a>,
    metadata: Metadata,
    rollback_of: Option<u64>,
    /// Set when applying an approved change request (no further approval is asked).
    applies: Option<AppliedRequest>,
}

/// A version of a document its writer still holds: all of it but the document and its number.
struct Made {
    checksum: String,
    metadata: Metadata,
    created_at: DateTime<Utc>,
}

impl ConfigService {
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

    #[tracing::instrument(level = "debug", name = "config.write", skip_all, fields(config = %id))]
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
        let views = tracing::debug_span!("config.validate")
            .in_scope(|| check_document(&doc, &self.secrets))?;
        self.ensure_writable()?;
        let write = || ProposedVersion {
            doc: &doc,
            views: &views,
            metadata: metadata.clone(),
            rollback_of,
            applies: applies.clone(),
        };
        let written = match self.try_write_version(id, write(), expected).await {
            // Without a precondition, losing a race to another writer is not the caller's
            // conflict: validate against the new head and try once more.
            Err(Error::VersionConflict { .. } | Error::ConcurrentModification { .. })
                if expected.is_none() =>
            {
                self.try_write_version(id, write(), None).await
            }
            other => other,
        }?;
        // The version answered is the one written, with the caller's document moved in.
        Ok(written.map(|(version, made)| {
            NewVersion {
                id: id.clone(),
                document: doc,
                metadata: made.metadata,
                checksum: made.checksum,
                created_at: made.created_at,
                rollback_of,
            }
            .numbered(version)
        }))
    }

    async fn try_write_version(
        &self,
        id: &ConfigId,
        proposed: ProposedVersion<'_>,
        expected: Option<u64>,
    ) -> Result<Written<(u64, Made)>> {
        let ProposedVersion {
            doc,
            views,
            metadata,
            rollback_of,
            applies,
        } = proposed;
        let _guard = self.lock(id).await;
        let mut head = self.store.configs().head(id).await?;
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
        let schema = self.cache.schema_for_write(id).await?;
        if let Some(schema) = &schema {
            let violations = tracing::debug_span!("config.validate_schema").in_scope(|| {
                Ok::<_, Error>(
                    schema
                        .compiled()?
                        .check_layers(views.layers(), &self.secrets),
                )
            })?;
            if !violations.is_empty() {
                return Err(Error::SchemaViolation { violations });
            }
        }
        let previous = head
            .as_ref()
            .filter(|h| !h.deleted)
            .map(|h| (h.latest.version, &h.latest.document));
        let touched = changed_environments(previous.map(|(_, doc)| doc), doc);
        let Described { checksum, details } = doc.describe(previous)?;
        let details = ChangeDetails {
            affected_instances: self.affected_instances(id, &touched),
            ..details
        };
        let audit = AuditDraft {
            actor: metadata.actor.clone(),
            action: if rollback_of.is_some() {
                "config.rollback"
            } else {
                "config.put"
            },
            environments: touched.as_list(),
            message: metadata.message.clone(),
            on_behalf_of: metadata.on_behalf_of.clone(),
            details,
        };
        self.check_environment_scope(&metadata, &touched, id.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.approvals_needed(&touched)
        {
            let operation = match rollback_of {
                Some(target_version) => ChangeOperation::Rollback { target_version },
                None => ChangeOperation::Put {
                    document: Box::new(Proposal::Config(doc.clone())),
                },
            };
            let subject = Subject::Config(id.clone());
            return self
                .request_change(subject, operation, live, protected, required, &metadata)
                .await
                .map(|request| Written::Pending(Box::new(request)));
        }
        // Where deployments are required, the version live now stays the one served. A
        // replica's cache may not know the config yet: "nothing live" is asked of the database.
        let live_now = if live == 0 && self.store.shared_by_replicas() {
            self.cache
                .fresh_head(id)
                .await?
                .map_or(0, |head| head.live_version())
        } else {
            live
        };
        self.serving.before_write(id, live_now).await?;
        let new_version = NewVersion {
            id: id.clone(),
            checksum,
            document: doc.clone(),
            metadata,
            created_at: now(),
            rollback_of,
        };
        let made = Made {
            checksum: new_version.checksum.clone(),
            metadata: new_version.metadata.clone(),
            created_at: new_version.created_at,
        };
        let write = VersionWrite {
            version: new_version,
            expected_live: live,
            expected_schema: schema.map_or(0, |known| known.schema.version),
            expected_number: None,
            audit,
            applies,
            announce: Vec::new(),
        };
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.configs().append(write).await })
            .await?;
        Ok(Written::Done((committed.version, made)))
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

    #[tracing::instrument(level = "debug", name = "config.delete", skip_all, fields(config = %id))]
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
        let live = match self.live_version(id).await.map(|latest| latest.version) {
            Ok(live) if expected.is_none_or(|e| e == live) => live,
            // This replica's cache may lag another's write (a create included): ask the
            // database before calling it a conflict or missing.
            _ if self.store.shared_by_replicas() => match self.cache.fresh_head(id).await? {
                Some(head) if !head.deleted => head.latest.version,
                _ => return Err(Error::not_found("config", id.as_str())),
            },
            cached => cached?,
        };
        if let Some(expected) = expected
            && expected != live
        {
            return Err(Error::VersionConflict {
                expected,
                actual: live,
            });
        }
        self.check_environment_scope(&metadata, &Touched::Every, id.as_str())
            .await?;
        if applies.is_none()
            && let Some((protected, required)) = self.approvals_needed(&Touched::Every)
        {
            return self
                .request_change(
                    Subject::Config(id.clone()),
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
            id: id.clone(),
            expected_live: live,
            audit: AuditDraft {
                actor: metadata.actor,
                action: "config.delete",
                environments: Touched::Every.as_list(),
                message: metadata.message,
                on_behalf_of: metadata.on_behalf_of.clone(),
                details: ChangeDetails {
                    affected_instances: self.affected_instances(id, &Touched::Every),
                    ..ChangeDetails::of_delete(live)
                },
            },
            at: now(),
            applies,
            announce: Vec::new(),
        };
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.configs().delete(write).await })
            .await?;
        Ok(Written::Done(committed.version))
    }

    /// The registered instances (not expired) of a touched environment whose heartbeats name
    /// the config, from memory: how many, and the first few.
    fn affected_instances(&self, id: &ConfigId, touched: &Touched) -> Option<AffectedInstances> {
        let mut affected = AffectedInstances::default();
        for (service, instances) in self.cache.cached_services() {
            for instance in instances.values() {
                let in_touched = match (&instance.environment, touched) {
                    (_, Touched::Every) => true,
                    (Some(environment), only) => only.includes(environment.as_str()),
                    (None, Touched::Only(_)) => false,
                };
                if instance.expired || !in_touched || !instance.applied.contains_key(id) {
                    continue;
                }
                affected.count += 1;
                if affected.instances.len() < MAX_NAMED_INSTANCES {
                    affected
                        .instances
                        .push(format!("{service}/{}", instance.instance_id));
                }
            }
        }
        (affected.count > 0).then_some(affected)
    }
}

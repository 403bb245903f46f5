//! What a write changed, for the change log and the audit. Every backend records the same
//! change for the same write, so it is said once here: a backend's part of the commit recipe
//! checks and writes the rows, then returns `Change::from(write)`, or, where the rows decide
//! the version (documents, schemas, instances), `write.numbered(version)`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::core::events::{ChangeEvent, ChangeKind, kind};
use crate::core::model::AuditDraft;
use crate::core::ports::notifications::WEBHOOK_CHANGE_VERSION;
use crate::core::ports::{
    AppliedRequest, ChangeRequestWrite, DeleteWrite, DeploymentWrite, InstanceRemove,
    InstanceWrite, Record, Rewrap, SchemaWrite, TOKEN_CHANGE_VERSION, TokenRevoke, TokenWrite,
    VersionWrite, WebhookDelete, WebhookWrite,
};
use crate::core::versioned::{Document, DocumentId};

/// What a write changed.
pub(crate) struct Change<'a> {
    pub kind: ChangeKind,
    /// The config id, flag key or token id the change is about.
    pub subject: &'a str,
    /// The version the write made (or, for a delete, removed).
    pub version: u64,
    /// Empty for changes that have no document of their own.
    pub checksum: Cow<'a, str>,
    pub audit: &'a AuditDraft,
    pub at: DateTime<Utc>,
    /// The approved change request this write applies.
    pub applies: Option<&'a AppliedRequest>,
}

impl Change<'_> {
    /// The event this change is once recorded under `revision`: as `kind` with `audit` (the
    /// change's own, or its follow-up's).
    pub(crate) fn event(&self, revision: u64, kind: ChangeKind, audit: &AuditDraft) -> ChangeEvent {
        ChangeEvent {
            revision,
            kind,
            config_id: self.subject.to_owned(),
            version: self.version,
            checksum: self.checksum.clone().into_owned(),
            actor: audit.actor.clone(),
            message: audit.message.clone(),
            at: self.at,
            environments: audit.environments.clone(),
            details: audit.details.clone(),
        }
    }
}

/// A write whose version the rows decide as it is applied.
pub(crate) trait Numbered {
    fn numbered(&self, version: u64) -> Change<'_>;
}

/// The change a record is: no document of its own, no checksum.
impl<'a> From<&'a Record> for Change<'a> {
    fn from(record: &'a Record) -> Self {
        Change {
            kind: record.kind,
            subject: &record.subject,
            version: record.version,
            checksum: Cow::Borrowed(""),
            audit: &record.audit,
            at: record.at,
            applies: None,
        }
    }
}

impl<D: Document> Numbered for VersionWrite<D> {
    fn numbered(&self, version: u64) -> Change<'_> {
        Change {
            kind: D::UPDATED,
            subject: self.version.id.as_str(),
            version,
            checksum: Cow::Borrowed(&self.version.checksum),
            audit: &self.audit,
            at: self.version.created_at,
            applies: self.applies.as_ref(),
        }
    }
}

/// The removed version's checksum comes from the rows: `Change { checksum, ..numbered }`.
impl<D: Document> Numbered for DeleteWrite<D> {
    fn numbered(&self, version: u64) -> Change<'_> {
        Change {
            kind: D::DELETED,
            subject: self.id.as_str(),
            version,
            checksum: Cow::Borrowed(""),
            audit: &self.audit,
            at: self.at,
            applies: self.applies.as_ref(),
        }
    }
}

impl Numbered for SchemaWrite {
    fn numbered(&self, version: u64) -> Change<'_> {
        Change {
            kind: kind::SCHEMA_UPDATED,
            subject: self.config_id.as_str(),
            version,
            checksum: Cow::Borrowed(&self.checksum),
            audit: &self.audit,
            at: self.created_at,
            applies: None,
        }
    }
}

impl Numbered for InstanceWrite {
    fn numbered(&self, version: u64) -> Change<'_> {
        Change {
            kind: self.kind,
            subject: &self.subject,
            version,
            checksum: Cow::Borrowed(&self.checksum),
            audit: &self.audit,
            at: self.at,
            applies: None,
        }
    }
}

impl Numbered for InstanceRemove {
    fn numbered(&self, version: u64) -> Change<'_> {
        Change {
            kind: self.kind,
            subject: &self.subject,
            version,
            checksum: Cow::Borrowed(""),
            audit: &self.audit,
            at: self.at,
            applies: None,
        }
    }
}

impl<'a> From<&'a TokenWrite> for Change<'a> {
    fn from(write: &'a TokenWrite) -> Self {
        Change {
            kind: kind::TOKEN_CREATED,
            subject: &write.token.id,
            version: TOKEN_CHANGE_VERSION,
            checksum: Cow::Borrowed(""),
            audit: &write.audit,
            at: write.token.created_at,
            applies: None,
        }
    }
}

impl<'a> From<&'a TokenRevoke> for Change<'a> {
    fn from(revoke: &'a TokenRevoke) -> Self {
        Change {
            kind: kind::TOKEN_REVOKED,
            subject: &revoke.id,
            version: TOKEN_CHANGE_VERSION,
            checksum: Cow::Borrowed(""),
            audit: &revoke.audit,
            at: revoke.at,
            applies: None,
        }
    }
}

/// A change request's change is about its subject, at the version it was based on.
impl<'a> From<&'a ChangeRequestWrite> for Change<'a> {
    fn from(write: &'a ChangeRequestWrite) -> Self {
        Change {
            kind: write.kind,
            subject: write.request.subject.as_str(),
            version: write.request.base_version,
            checksum: Cow::Borrowed(""),
            audit: &write.audit,
            at: write.request.updated_at,
            applies: None,
        }
    }
}

/// A deployment's change is about its config, at the version it deploys.
impl<'a> From<&'a DeploymentWrite> for Change<'a> {
    fn from(write: &'a DeploymentWrite) -> Self {
        Change {
            kind: write.kind,
            subject: write.deployment.config_id.as_str(),
            version: write.deployment.version,
            checksum: Cow::Borrowed(""),
            audit: &write.audit,
            at: write.at,
            applies: write.applies.as_ref(),
        }
    }
}

impl<'a> From<&'a WebhookWrite> for Change<'a> {
    fn from(write: &'a WebhookWrite) -> Self {
        Change {
            kind: write.kind,
            subject: &write.webhook.id,
            version: WEBHOOK_CHANGE_VERSION,
            checksum: Cow::Borrowed(""),
            audit: &write.audit,
            at: write.webhook.updated_at,
            applies: None,
        }
    }
}

impl<'a> From<&'a WebhookDelete> for Change<'a> {
    fn from(delete: &'a WebhookDelete) -> Self {
        Change {
            kind: kind::WEBHOOK_DELETED,
            subject: &delete.id,
            version: WEBHOOK_CHANGE_VERSION,
            checksum: Cow::Borrowed(""),
            audit: &delete.audit,
            at: delete.at,
            applies: None,
        }
    }
}

impl<'a> From<&'a Rewrap> for Change<'a> {
    fn from(rewrap: &'a Rewrap) -> Self {
        Change {
            kind: kind::SECRET_REWRAPPED,
            subject: rewrap.name.as_str(),
            version: rewrap.version,
            checksum: Cow::Borrowed(&rewrap.checksum),
            audit: &rewrap.audit,
            at: rewrap.at,
            applies: None,
        }
    }
}

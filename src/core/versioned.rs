//! Versioned documents: what configs and flags (and every later document with a history) share.
//! A document is written as immutable numbered versions; the newest one is the head, a delete
//! marks the head deleted and keeps the history, a rollback writes an old document again as a new
//! version. One generic type per notion (`Version<D>`, `Head<D>`, `NewVersion<D>`) and one
//! storage port (`ports::DocumentStore<D>`) serve every kind, so history, rollback, audit and
//! change events behave alike.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use super::error::Result;
use super::events::{ChangeDetails, ChangeKind};
use super::ids::{ConfigId, FlagKey, SecretName, StrategyName};

/// Who made a change and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set by the transport, never by the client: the `actor` the client named, when the
    /// authenticated identity (now `actor`) differs from it. Audited, not stored with versions.
    #[serde(skip)]
    pub on_behalf_of: Option<String>,
    /// Set by the transport for an environment-scoped identity: the change may touch only
    /// these environments (the core checks what it computes the change touches).
    #[serde(skip)]
    pub allowed_environments: Option<Vec<String>>,
}

/// The kinds of versioned document; a backend keeps each kind's rows apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    Config,
    Flag,
    Secret,
    Strategy,
}

impl DocumentKind {
    /// The kind's name in errors (`config 'x' not found`).
    pub const fn name(self) -> &'static str {
        match self {
            DocumentKind::Config => "config",
            DocumentKind::Flag => "flag",
            DocumentKind::Secret => "secret",
            DocumentKind::Strategy => "deployment strategy",
        }
    }

    /// The change a new version records.
    pub const fn updated(self) -> ChangeKind {
        match self {
            DocumentKind::Config => ChangeKind::ConfigUpdated,
            DocumentKind::Flag => ChangeKind::FlagUpdated,
            DocumentKind::Secret => ChangeKind::SecretUpdated,
            DocumentKind::Strategy => ChangeKind::StrategyUpdated,
        }
    }

    /// The change a delete records.
    pub const fn deleted(self) -> ChangeKind {
        match self {
            DocumentKind::Config => ChangeKind::ConfigDeleted,
            DocumentKind::Flag => ChangeKind::FlagDeleted,
            DocumentKind::Secret => ChangeKind::SecretDeleted,
            DocumentKind::Strategy => ChangeKind::StrategyDeleted,
        }
    }
}

/// What identifies a document of one kind.
pub trait DocumentId:
    Clone + fmt::Debug + fmt::Display + Ord + Hash + Serialize + Send + Sync + 'static
{
    /// The id's name in JSON (`configId`, `key`).
    const FIELD: &'static str;
    fn parse(raw: &str) -> Result<Self>;
    fn as_str(&self) -> &str;
}

impl DocumentId for ConfigId {
    const FIELD: &'static str = "configId";
    fn parse(raw: &str) -> Result<Self> {
        ConfigId::parse(raw)
    }
    fn as_str(&self) -> &str {
        ConfigId::as_str(self)
    }
}

impl DocumentId for FlagKey {
    const FIELD: &'static str = "key";
    fn parse(raw: &str) -> Result<Self> {
        FlagKey::parse(raw)
    }
    fn as_str(&self) -> &str {
        FlagKey::as_str(self)
    }
}

impl DocumentId for SecretName {
    const FIELD: &'static str = "name";
    fn parse(raw: &str) -> Result<Self> {
        SecretName::parse(raw)
    }
    fn as_str(&self) -> &str {
        SecretName::as_str(self)
    }
}

impl DocumentId for StrategyName {
    const FIELD: &'static str = "name";
    fn parse(raw: &str) -> Result<Self> {
        StrategyName::parse(raw)
    }
    fn as_str(&self) -> &str {
        StrategyName::as_str(self)
    }
}

/// The body of one version of a versioned document.
pub trait Document:
    Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    type Id: DocumentId;
    const KIND: DocumentKind;
    /// The document's name in errors (`config 'x' not found`).
    const NAME: &'static str = Self::KIND.name();
    /// The change a new version records, and the one a delete records.
    const UPDATED: ChangeKind = Self::KIND.updated();
    const DELETED: ChangeKind = Self::KIND.deleted();
    /// The version checksum: SHA-256 of the RFC 8785 form of the whole document.
    fn checksum(&self) -> Result<String> {
        let value = serde_json::to_value(self).map_err(super::error::Error::internal)?;
        Ok(super::checksum::checksum(&value))
    }

    /// This document as a new version after `previous` (its number and document, if one is
    /// live): its checksum and what the change did, from one JSON form of the document.
    fn describe(&self, previous: Option<(u64, &Self)>) -> Result<Described> {
        let value = serde_json::to_value(self).map_err(super::error::Error::internal)?;
        Ok(Described {
            details: ChangeDetails::of_version(previous, &value)?,
            checksum: super::checksum::checksum(&value),
        })
    }
}

/// A new version's checksum and change details (`Document::describe`).
pub struct Described {
    pub checksum: String,
    pub details: ChangeDetails,
}

/// One immutable version of a document. In JSON the document's fields sit beside the version's
/// own (`configId`/`key`, `version`, `metadata`, `checksum`, `createdAt`, `rollbackOf`).
#[derive(Debug)]
pub struct Version<D: Document> {
    pub id: D::Id,
    pub version: u64,
    pub document: D,
    pub metadata: Metadata,
    pub checksum: String,
    pub created_at: DateTime<Utc>,
    pub rollback_of: Option<u64>,
    /// A view derived from this version (rendered layers, a compiled flag), made once by whoever
    /// reads it and kept with the shared `Arc` the read cache hands out. The record does not
    /// know the view's type, so the domain model depends on none of its readers.
    view: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl<D: Document> Version<D> {
    /// The view of type `V` this version carries, made by `make` on first use. A kind has one
    /// view type; asking one version for two is a bug, reported as an internal error.
    pub fn view<V: Any + Send + Sync>(&self, make: impl FnOnce(&Self) -> V) -> Result<&V> {
        self.view
            .get_or_init(|| Box::new(make(self)))
            .downcast_ref()
            .ok_or_else(|| {
                super::error::Error::internal(format!(
                    "{} {} v{} carries a view of another type",
                    D::NAME,
                    self.id,
                    self.version
                ))
            })
    }

    /// Keeps `view` with this version unless one is there already (the first one made wins).
    pub fn keep_view<V: Any + Send + Sync>(&self, view: V) {
        let _ = self.view.set(Box::new(view));
    }
}

impl<D: Document> Serialize for Version<D> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase", bound = "")]
        struct Wire<'a, D: Document> {
            #[serde(flatten)]
            id: IdField<'a, D::Id>,
            version: u64,
            #[serde(flatten)]
            document: &'a D,
            metadata: &'a Metadata,
            checksum: &'a str,
            created_at: DateTime<Utc>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rollback_of: Option<u64>,
        }
        Wire::<D> {
            id: IdField(&self.id),
            version: self.version,
            document: &self.document,
            metadata: &self.metadata,
            checksum: &self.checksum,
            created_at: self.created_at,
            rollback_of: self.rollback_of,
        }
        .serialize(serializer)
    }
}

/// The id under its kind's field name.
struct IdField<'a, I>(&'a I);

impl<I: DocumentId> Serialize for IdField<'_, I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(I::FIELD, self.0)?;
        map.end()
    }
}

// A clone starts without the view (views are not `Clone`); it is made again on first use.
impl<D: Document> Clone for Version<D> {
    fn clone(&self) -> Self {
        Version {
            id: self.id.clone(),
            version: self.version,
            document: self.document.clone(),
            metadata: self.metadata.clone(),
            checksum: self.checksum.clone(),
            created_at: self.created_at,
            rollback_of: self.rollback_of,
            view: OnceLock::new(),
        }
    }
}

/// A version before the store numbers it.
#[derive(Debug, Clone)]
pub struct NewVersion<D: Document> {
    pub id: D::Id,
    pub document: D,
    pub metadata: Metadata,
    pub checksum: String,
    pub created_at: DateTime<Utc>,
    pub rollback_of: Option<u64>,
}

impl<D: Document> NewVersion<D> {
    pub fn numbered(self, version: u64) -> Version<D> {
        Version {
            id: self.id,
            version,
            document: self.document,
            metadata: self.metadata,
            checksum: self.checksum,
            created_at: self.created_at,
            rollback_of: self.rollback_of,
            view: OnceLock::new(),
        }
    }
}

/// The newest version of a document and whether the document is deleted.
#[derive(Debug)]
pub struct Head<D: Document> {
    pub latest: Arc<Version<D>>,
    pub deleted: bool,
}

// Not derived: a derive would ask `D: Clone` of the `Arc`.
impl<D: Document> Clone for Head<D> {
    fn clone(&self) -> Self {
        Head {
            latest: self.latest.clone(),
            deleted: self.deleted,
        }
    }
}

impl<D: Document> Head<D> {
    /// The version writes are compared with: 0 when the document does not exist (or was deleted).
    pub fn live_version(&self) -> u64 {
        if self.deleted { 0 } else { self.latest.version }
    }

    /// The latest version unless the document is deleted.
    pub fn live(&self) -> Option<&Arc<Version<D>>> {
        (!self.deleted).then_some(&self.latest)
    }
}

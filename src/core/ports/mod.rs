//! Storage ports: the contract the core asks of storage, one trait per aggregate, owned here so
//! that neither the core nor the transports depend on a backend. Backends (`store::memory`,
//! `store::sqlite`, `store::postgres`) implement every port; the read cache implements them
//! too (write-through) and adds `ReadCache`. One conformance suite (`tests/it/conformance/`)
//! runs against each.

use std::sync::Arc;

use crate::core::error::{Error, Result};
use crate::core::events::ChangeEvent;

pub mod access;
pub mod applied;
pub mod approvals;
pub mod cache;
pub mod changelog;
pub mod database;
pub mod deployments;
pub mod documents;
pub mod notifications;
pub mod registry;
pub mod schemas;
pub mod secrets;

pub use access::{AccessStore, TokenRevoke, TokenWrite};
pub use applied::AppliedStore;
pub use approvals::{ChangeRequestQuery, ChangeRequestStore, ChangeRequestWrite};
pub use cache::{ReadCache, ServiceInstances, TokenMap};
pub use changelog::{AuditQuery, AuditSubject, ChangeLog, Record};
pub use database::{CommittedHere, Database};
pub use deployments::{DeploymentQuery, DeploymentStore, DeploymentWrite};
pub use documents::{AppliedRequest, DeleteWrite, DocumentStore, VersionWrite};
pub use notifications::{
    DeliveryQuery, DueQuery, FanOut, NotificationStore, Outcomes, Redelivery, WebhookDelete,
    WebhookWrite,
};
pub use registry::{
    InstanceExpectation, InstanceRemove, InstanceRow, InstanceWrite, RegistryStore, Touch,
};
pub use schemas::{SchemaStore, SchemaWrite};
pub use secrets::{Rewrap, SecretStore};

use crate::core::deployments::strategy::Strategy;
use crate::core::flags::FlagDefinition;
use crate::core::model::ConfigDocument;
use crate::core::secrets::model::SecretDocument;
use crate::core::versioned::{Document, DocumentId};

/// Config versions in the store's ports.
pub type ConfigWrite = VersionWrite<ConfigDocument>;
pub type ConfigDeleteWrite = DeleteWrite<ConfigDocument>;
/// Flag versions in the store's ports.
pub type FlagWrite = VersionWrite<FlagDefinition>;
pub type FlagDeleteWrite = DeleteWrite<FlagDefinition>;
/// Secret versions in the store's ports.
pub type SecretWrite = VersionWrite<SecretDocument>;
pub type SecretDeleteWrite = DeleteWrite<SecretDocument>;
/// Deployment-strategy versions in the store's ports.
pub type StrategyWrite = VersionWrite<Strategy>;
pub type StrategyDeleteWrite = DeleteWrite<Strategy>;

/// Every port: what a backend implements (each says so with an empty `impl Store`).
pub trait Store:
    DocumentStore<ConfigDocument>
    + DocumentStore<FlagDefinition>
    + DocumentStore<SecretDocument>
    + DocumentStore<Strategy>
    + SecretStore
    + RegistryStore
    + DeploymentStore
    + NotificationStore
    + SchemaStore
    + AccessStore
    + ChangeRequestStore
    + ChangeLog
    + AppliedStore
    + Database
{
}

/// What the services hold: the store they write through and the cache they read from (in a
/// running server the same object, the read cache in front of the backend).
#[derive(Clone)]
pub struct Storage {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn ReadCache>,
}

/// A store's documents by kind: `store.configs().head(&id)`, `store.flags().append(write)`.
pub trait Documents {
    fn configs(&self) -> &dyn DocumentStore<ConfigDocument>;
    fn flags(&self) -> &dyn DocumentStore<FlagDefinition>;
    fn secrets(&self) -> &dyn DocumentStore<SecretDocument>;
    fn strategies(&self) -> &dyn DocumentStore<Strategy>;
}

impl<T: Store> Documents for T {
    fn configs(&self) -> &dyn DocumentStore<ConfigDocument> {
        self
    }
    fn flags(&self) -> &dyn DocumentStore<FlagDefinition> {
        self
    }
    fn secrets(&self) -> &dyn DocumentStore<SecretDocument> {
        self
    }
    fn strategies(&self) -> &dyn DocumentStore<Strategy> {
        self
    }
}

impl Documents for dyn Store + '_ {
    fn configs(&self) -> &dyn DocumentStore<ConfigDocument> {
        self
    }
    fn flags(&self) -> &dyn DocumentStore<FlagDefinition> {
        self
    }
    fn secrets(&self) -> &dyn DocumentStore<SecretDocument> {
        self
    }
    fn strategies(&self) -> &dyn DocumentStore<Strategy> {
        self
    }
}

/// What a committed write produced.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The new config or schema version (for deletes, the last version).
    pub version: u64,
    pub event: ChangeEvent,
    /// A second change committed in the same transaction (`change_request.applied`).
    pub follow_up: Option<ChangeEvent>,
    /// The write's `announce` records, committed in the same transaction, in revision order.
    pub announced: Vec<ChangeEvent>,
}

impl Committed {
    /// Every change the write committed, in revision order: its own, the follow-up, the
    /// announcements.
    pub fn events(&self) -> impl Iterator<Item = &ChangeEvent> {
        std::iter::once(&self.event)
            .chain(&self.follow_up)
            .chain(&self.announced)
    }
}

/// A document's row as a write sees it inside its transaction; the write rules of every backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadRow {
    pub latest: u64,
    pub deleted: bool,
    pub schema: u64,
}

impl HeadRow {
    /// The version writes are compared with: 0 when absent or deleted.
    pub fn live(self) -> u64 {
        if self.deleted { 0 } else { self.latest }
    }

    /// The number the new version gets, if `write`'s expectations hold.
    pub fn check_version_write<D: Document>(self, write: &VersionWrite<D>) -> Result<u64> {
        self.check_expected_live(write.expected_live)?;
        if self.schema != write.expected_schema {
            return Err(Error::concurrent(
                "the schema changed while the config was being validated; retry",
            ));
        }
        let number = self.latest + 1;
        if write
            .expected_number
            .is_some_and(|expected| expected != number)
        {
            return Err(Error::concurrent(format!(
                "{} was written meanwhile; retry",
                D::NAME
            )));
        }
        Ok(number)
    }

    /// The version a delete removes, if there is one and `write`'s expectation holds.
    pub fn check_delete<D: Document>(self, write: &DeleteWrite<D>) -> Result<u64> {
        if self.live() == 0 {
            return Err(Error::not_found(D::NAME, write.id.as_str()));
        }
        self.check_expected_live(write.expected_live)?;
        Ok(self.latest)
    }

    /// The number the new schema version gets, if `write`'s expectations hold.
    pub fn check_schema_write(self, write: &SchemaWrite) -> Result<u64> {
        if self.schema != write.expected_schema || self.live() != write.expected_live {
            return Err(Error::concurrent(
                "the config or its schema changed while the schema was being checked; retry",
            ));
        }
        Ok(self.schema + 1)
    }

    fn check_expected_live(self, expected: u64) -> Result<()> {
        if self.live() != expected {
            return Err(Error::VersionConflict {
                expected,
                actual: self.live(),
            });
        }
        Ok(())
    }
}

/// The version a token change records: tokens have no versions.
pub const TOKEN_CHANGE_VERSION: u64 = 1;

/// A write applying change request `id` found it not (or no longer) `approved`.
pub fn request_not_approved(id: &str) -> Error {
    Error::concurrent(format!(
        "change request {id} is not approved (any more); nothing was written"
    ))
}

/// A change request update whose expected (status, approvals) no longer hold.
pub fn request_changed(id: &str) -> Error {
    Error::concurrent(format!(
        "change request {id} changed meanwhile; reload it and retry"
    ))
}

/// A change request insert whose id is taken.
pub fn request_exists(id: &str) -> Error {
    Error::concurrent(format!("change request {id} already exists"))
}

pub fn token_exists(id: &str) -> Error {
    Error::conflict(format!(
        "token {id} (or one with the same secret) already exists"
    ))
}

pub fn token_already_revoked(id: &str) -> Error {
    Error::conflict(format!("token {id} is already revoked"))
}

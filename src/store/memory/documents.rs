//! Versioned documents (configs, flags, secrets): heads and histories, appends and deletes, written once
//! for every kind. Each kind keeps its own `Histories`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::commit::Change;
use super::{MemoryStore, State, page};
use crate::core::deployments::strategy::Strategy;
use crate::core::error::{Error, Result};
use crate::core::flags::FlagDefinition;
use crate::core::model::ConfigDocument;
use crate::core::ports::{Committed, DeleteWrite, DocumentStore, HeadRow, VersionWrite};
use crate::core::secrets::model::SecretDocument;
use crate::core::versioned::{Document, Head, Version};
use crate::store::change::Numbered;

/// Every document of one kind: its versions, oldest first, and whether it is deleted.
pub(super) struct Histories<D: Document> {
    pub versions: BTreeMap<D::Id, Vec<Arc<Version<D>>>>,
    pub deleted: BTreeMap<D::Id, bool>,
}

impl<D: Document> Default for Histories<D> {
    fn default() -> Self {
        Histories {
            versions: BTreeMap::new(),
            deleted: BTreeMap::new(),
        }
    }
}

impl<D: Document> Histories<D> {
    fn latest(&self, id: &D::Id) -> Option<&Arc<Version<D>>> {
        self.versions.get(id).and_then(|v| v.last())
    }

    fn deleted(&self, id: &D::Id) -> bool {
        self.deleted.get(id).copied().unwrap_or(false)
    }

    fn head(&self, id: &D::Id) -> Option<Head<D>> {
        self.latest(id).map(|latest| Head {
            latest: latest.clone(),
            deleted: self.deleted(id),
        })
    }

    /// The head row a write is checked against; `schema` is the document's schema version.
    pub(super) fn head_row(&self, id: &D::Id, schema: u64) -> HeadRow {
        HeadRow {
            latest: self.latest(id).map_or(0, |v| v.version),
            deleted: self.deleted(id),
            schema,
        }
    }
}

/// Where the state keeps the documents of a kind.
pub(super) trait Kept: Document {
    fn histories(state: &State) -> &Histories<Self>;
    fn histories_mut(state: &mut State) -> &mut Histories<Self>;
    /// The schema version writes of this document are checked against (0 without schemas).
    fn schema(_state: &State, _id: &Self::Id) -> u64 {
        0
    }
}

impl Kept for ConfigDocument {
    fn histories(state: &State) -> &Histories<Self> {
        &state.configs
    }
    fn histories_mut(state: &mut State) -> &mut Histories<Self> {
        &mut state.configs
    }
    fn schema(state: &State, id: &Self::Id) -> u64 {
        state.schemas.get(id).map_or(0, |s| s.len() as u64)
    }
}

impl Kept for SecretDocument {
    fn histories(state: &State) -> &Histories<Self> {
        &state.secrets
    }
    fn histories_mut(state: &mut State) -> &mut Histories<Self> {
        &mut state.secrets
    }
}

impl Kept for Strategy {
    fn histories(state: &State) -> &Histories<Self> {
        &state.strategies
    }
    fn histories_mut(state: &mut State) -> &mut Histories<Self> {
        &mut state.strategies
    }
}

impl Kept for FlagDefinition {
    fn histories(state: &State) -> &Histories<Self> {
        &state.flags
    }
    fn histories_mut(state: &mut State) -> &mut Histories<Self> {
        &mut state.flags
    }
}

fn head_row<D: Kept>(state: &State, id: &D::Id) -> HeadRow {
    D::histories(state).head_row(id, D::schema(state, id))
}

#[async_trait]
impl<D: Kept> DocumentStore<D> for MemoryStore {
    async fn head(&self, id: &D::Id) -> Result<Option<Head<D>>> {
        Ok(D::histories(&self.state.lock()).head(id))
    }

    async fn heads(&self) -> Result<Vec<Head<D>>> {
        let state = self.state.lock();
        let histories = D::histories(&state);
        Ok(histories
            .versions
            .keys()
            .filter_map(|id| histories.head(id))
            .collect())
    }

    async fn version(&self, id: &D::Id, version: u64) -> Result<Option<Version<D>>> {
        let state = self.state.lock();
        Ok(D::histories(&state)
            .versions
            .get(id)
            .and_then(|v| v.get(version.checked_sub(1)? as usize))
            .map(|v| v.as_ref().clone()))
    }

    async fn versions(
        &self,
        id: &D::Id,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Version<D>>> {
        let state = self.state.lock();
        let Some(versions) = D::histories(&state).versions.get(id) else {
            return Ok(Vec::new());
        };
        let versions = page(versions.iter(), |v| v.version, before, limit);
        Ok(versions.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    async fn append(&self, write: VersionWrite<D>) -> Result<Committed> {
        let mut state = self.state.lock();
        let number = head_row::<D>(&state, &write.version.id).check_version_write(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let version = Arc::new(write.version.clone().numbered(number));
        let id = &version.id;
        let histories = D::histories_mut(&mut state);
        histories
            .versions
            .entry(id.clone())
            .or_default()
            .push(version.clone());
        histories.deleted.insert(id.clone(), false);
        Ok(state.commit_announcing(write.numbered(number), &write.announce))
    }

    async fn delete(&self, write: DeleteWrite<D>) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = &write.id;
        head_row::<D>(&state, id).check_delete(&write)?;
        state.check_applies(write.applies.as_ref())?;
        let histories = D::histories_mut(&mut state);
        let latest = histories
            .latest(id)
            .cloned()
            .ok_or_else(|| Error::internal(format!("live {} {id} has no versions", D::NAME)))?;
        histories.deleted.insert(id.clone(), true);
        let change = Change {
            checksum: Cow::Borrowed(&latest.checksum),
            ..write.numbered(latest.version)
        };
        Ok(state.commit_announcing(change, &write.announce))
    }
}

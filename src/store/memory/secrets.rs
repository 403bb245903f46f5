//! The secret store beyond its versioned documents: re-wrapping a stored version.

use std::sync::Arc;

use async_trait::async_trait;

use super::MemoryStore;
use super::commit::Change;
use crate::core::error::{Error, Result};
use crate::core::ports::{Committed, Rewrap, SecretStore};

#[async_trait]
impl SecretStore for MemoryStore {
    async fn rewrap(&self, rewrap: Rewrap) -> Result<Committed> {
        let mut state = self.state.lock();
        let slot = state
            .secrets
            .versions
            .get_mut(&rewrap.name)
            .and_then(|versions| versions.get_mut(rewrap.version.checked_sub(1)? as usize))
            .filter(|stored| stored.checksum == rewrap.expected_checksum)
            .ok_or_else(|| {
                Error::concurrent(format!(
                    "secret {} v{} changed (or is gone) since it was read; retry",
                    rewrap.name, rewrap.version
                ))
            })?;
        let mut version = slot.as_ref().clone();
        version.document = rewrap.document.clone();
        version.checksum = rewrap.checksum.clone();
        *slot = Arc::new(version);
        Ok(state.commit(Change::from(&rewrap)))
    }
}

//! The JSON Schemas of configs.

use async_trait::async_trait;

use super::MemoryStore;
use super::documents::Kept;
use crate::core::error::Result;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigDocument, SchemaVersion};
use crate::core::ports::{Committed, SchemaStore, SchemaWrite};
use crate::store::change::Numbered;

#[async_trait]
impl SchemaStore for MemoryStore {
    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        Ok(self
            .state
            .lock()
            .schemas
            .get(id)
            .and_then(|s| s.last())
            .cloned())
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let id = &write.config_id;
        let schema = ConfigDocument::schema(&state, id);
        let number = ConfigDocument::histories(&state)
            .head_row(id, schema)
            .check_schema_write(&write)?;
        let change = write.numbered(number);
        let committed = state.commit(change);
        let SchemaWrite {
            config_id,
            schema,
            checksum,
            metadata,
            created_at,
            ..
        } = write;
        let schema = SchemaVersion {
            config_id,
            version: number,
            schema,
            checksum,
            metadata,
            created_at,
        };
        state
            .schemas
            .entry(schema.config_id.clone())
            .or_default()
            .push(schema);
        Ok(committed)
    }
}

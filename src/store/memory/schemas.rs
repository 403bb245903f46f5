//! The JSON Schemas of configs.

use async_trait::async_trait;

use super::MemoryStore;
use super::commit::Change;
use super::documents::Kept;
use crate::core::error::Result;
use crate::core::events::kind;
use crate::core::ids::ConfigId;
use crate::core::model::{ConfigDocument, SchemaVersion};
use crate::core::ports::{Committed, SchemaStore, SchemaWrite};

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
        let change = Change {
            kind: kind::SCHEMA_UPDATED,
            subject: id.as_str(),
            version: number,
            checksum: &write.checksum,
            audit: &write.audit,
            at: write.created_at,
            applies: None,
        };
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

//! Schemas: register (the current config must satisfy it), read, check a candidate.

use super::{ConfigService, now};
use crate::core::access::{Caller, Permission};
use crate::core::ids::Touched;
use crate::core::ports::Documents;

use serde::Serialize;
use serde_json::Value;

use crate::core::checksum::checksum;
use crate::core::error::{Error, Result, Violation};
use crate::core::ids::ConfigId;
use crate::core::model::{AuditDraft, ConfigDocument, Metadata, SchemaVersion};
use crate::core::ports::SchemaWrite;
use crate::core::validation::{CompiledSchema, check_document, check_metadata};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u64>,
    pub violations: Vec<Violation>,
}

impl ConfigService {
    pub async fn put_schema(
        &self,
        caller: &Caller,
        id: &ConfigId,
        schema: Value,
        metadata: Metadata,
    ) -> Result<SchemaVersion> {
        caller.require_on(Permission::Write, id.as_str())?;
        check_metadata(&metadata)?;
        self.ensure_writable()?;
        // A schema binds every environment's views.
        self.check_environment_scope(&metadata, &Touched::Every, id.as_str())
            .await?;
        let compiled = CompiledSchema::compile(&schema)?;
        match self
            .try_put_schema(id, &compiled, schema.clone(), metadata.clone())
            .await
        {
            // Another replica changed the config or schema meanwhile: check against the new
            // state once more (the cache was refreshed by the conflict).
            Err(Error::ConcurrentModification { .. }) => {
                self.try_put_schema(id, &compiled, schema, metadata).await
            }
            other => other,
        }
    }

    async fn try_put_schema(
        &self,
        id: &ConfigId,
        compiled: &CompiledSchema,
        schema: Value,
        metadata: Metadata,
    ) -> Result<SchemaVersion> {
        let _guard = self.lock(id).await;
        let head = self.store.configs().head(id).await?.filter(|h| !h.deleted);
        if let Some(head) = &head {
            let violations = compiled.check(&head.latest.document, &self.secrets);
            if !violations.is_empty() {
                return Err(Error::SchemaViolation { violations });
            }
        }
        let current = self.store.schema(id).await?;
        let write = SchemaWrite {
            config_id: id.clone(),
            checksum: checksum(&schema),
            schema: schema.clone(),
            metadata: metadata.clone(),
            created_at: now(),
            expected_schema: current.as_ref().map_or(0, |s| s.version),
            expected_live: head.as_ref().map_or(0, |h| h.latest.version),
            audit: AuditDraft {
                actor: metadata.actor.clone(),
                action: "schema.put",
                environments: Touched::Every.as_list(),
                message: metadata.message.clone(),
                on_behalf_of: metadata.on_behalf_of.clone(),
                details: Default::default(),
            },
        };
        let (checksum, created_at) = (write.checksum.clone(), write.created_at);
        let store = self.store.clone();
        let committed = self
            .commit(async move { store.put_schema(write).await })
            .await?;
        Ok(SchemaVersion {
            config_id: id.clone(),
            version: committed.version,
            schema,
            checksum,
            metadata,
            created_at,
        })
    }

    pub async fn schema(&self, caller: &Caller, id: &ConfigId) -> Result<SchemaVersion> {
        caller.require_on(Permission::Read, id.as_str())?;
        self.store
            .schema(id)
            .await?
            .ok_or_else(|| Error::not_found("schema", id.as_str()))
    }

    /// Checks a candidate document against the shape rules and the registered schema.
    pub async fn validate(
        &self,
        caller: &Caller,
        id: &ConfigId,
        doc: &ConfigDocument,
    ) -> Result<ValidationReport> {
        caller.require_on(Permission::Read, id.as_str())?;
        let schema = self.store.schema(id).await?;
        let violations = match (check_document(doc, &self.secrets), &schema) {
            (Ok(views), Some(schema)) => {
                CompiledSchema::compile(&schema.schema)?.check_layers(views.layers(), &self.secrets)
            }
            (Ok(_), None) => Vec::new(),
            (Err(error @ Error::InvalidInput { .. }), _) => error.violations(),
            (Err(other), _) => return Err(other),
        };
        Ok(ValidationReport {
            valid: violations.is_empty(),
            schema_version: schema.map(|s| s.version),
            violations,
        })
    }
}

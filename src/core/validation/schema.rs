//! A config's JSON Schema: compiled once, and the violations of every view of a document.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::Value;

use crate::core::effective::{LayerValue, all_layer_values};
use crate::core::error::{Error, Result, Violation};
use crate::core::model::{ConfigDocument, SchemaVersion};
use crate::core::secrets::{SecretResolver, pointer_or_root, reference_pointers};

/// A config's registered schema as a process knows it (the read cache keeps it between
/// writes), compiled at most once.
pub struct KnownSchema {
    pub schema: SchemaVersion,
    compiled: OnceLock<CompiledSchema>,
}

impl KnownSchema {
    pub fn new(schema: SchemaVersion) -> KnownSchema {
        KnownSchema {
            schema,
            compiled: OnceLock::new(),
        }
    }

    /// The compiled schema: compiled on first use (two first uses at once may both compile;
    /// one result is kept).
    pub fn compiled(&self) -> Result<&CompiledSchema> {
        if let Some(compiled) = self.compiled.get() {
            return Ok(compiled);
        }
        let compiled = CompiledSchema::compile(&self.schema.schema)?;
        Ok(self.compiled.get_or_init(|| compiled))
    }
}

/// A compiled JSON Schema.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    pub fn compile(schema: &Value) -> Result<Self> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(Error::InvalidSchema {
                pointer: "/schema".into(),
                message: "a JSON Schema must be an object or a boolean".into(),
            });
        }
        let validator = jsonschema::validator_for(schema).map_err(|e| Error::InvalidSchema {
            pointer: format!("/schema{}", e.instance_path().as_str()),
            message: e.masked().to_string(),
        })?;
        Ok(CompiledSchema { validator })
    }

    /// Violations of one value, each with the canonical text of the failing value (never shown,
    /// only compared); errors at or below a secret reference are not reported, since the
    /// reference stands for a value the schema cannot see.
    fn violations(
        &self,
        value: &Value,
        scope: Option<&str>,
        secrets: &SecretResolver,
    ) -> Vec<(Violation, String)> {
        let secret_pointers = reference_pointers(value, "", secrets).unwrap_or_default();
        self.validator
            .iter_errors(value)
            .filter_map(|error| {
                let pointer = error.instance_path().as_str().to_owned();
                let under_secret = secret_pointers
                    .iter()
                    .any(|s| pointer == *s || pointer.starts_with(&format!("{s}/")));
                let failing = error.instance().to_string();
                (!under_secret).then(|| {
                    let violation = Violation {
                        pointer: pointer_or_root(&pointer),
                        message: error.masked().to_string(),
                        scope: scope.map(str::to_owned),
                    };
                    (violation, failing)
                })
            })
            .collect()
    }

    /// Every violation across every view of the document (base, environments, canary, variants).
    pub fn check(&self, doc: &ConfigDocument, secrets: &SecretResolver) -> Vec<Violation> {
        self.check_layers(&all_layer_values(doc), secrets)
    }

    /// As `check`, for views already built (see `check_document`).
    pub fn check_layers(&self, layers: &[LayerValue], secrets: &SecretResolver) -> Vec<Violation> {
        let mut seen = HashSet::new();
        layers
            .iter()
            .flat_map(|layer| self.violations(&layer.value, layer.scope.as_deref(), secrets))
            // A failure inherited by several views (same place, same value) is reported once,
            // with its first scope; the same place failing with another value is reported too.
            .filter(|(v, failing)| {
                seen.insert((v.pointer.clone(), v.message.clone(), failing.clone()))
            })
            .map(|(violation, _)| violation)
            .collect()
    }
}

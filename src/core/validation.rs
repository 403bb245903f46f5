//! Checks a write must pass before it is stored: document shape, secret references, JSON Schema.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::Value;

use super::effective::{LayerValue, all_layer_values};
use super::error::{Error, Result};
use super::ids::Environment;
use super::model::{ConfigDocument, Metadata};
use super::rollout::BasisPoints;
use super::secrets::{SecretResolver, push_token, reference_pointers};

mod schema;

pub use schema::{CompiledSchema, KnownSchema};

const MAX_ACTOR: usize = 256;
const MAX_MESSAGE: usize = 4096;
const MAX_NAME: usize = 128;
/// Environments with an override of their own, per version.
pub const MAX_OVERRIDES: usize = 64;
/// Variants of one A/B test.
pub const MAX_VARIANTS: usize = 32;
/// Every view of a version is rendered and kept in memory: 2 × views × the largest a view can
/// be may not exceed this, so one write cannot make the server render gigabytes.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024 * 1024;
/// Integers beyond ±(2^53 − 1) do not survive RFC 8785 canonical JSON (IEEE 754 doubles).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Refuses integers that canonical JSON would round, naming the first one's pointer.
pub(crate) fn check_numbers(value: &Value, pointer: &mut String) -> Result<()> {
    match value {
        Value::Number(n) => {
            let unsafe_integer = n.as_u64().is_some_and(|u| u > MAX_SAFE_INTEGER)
                || n.as_i64()
                    .is_some_and(|i| i.unsigned_abs() > MAX_SAFE_INTEGER);
            if unsafe_integer {
                return Err(Error::invalid(
                    pointer.clone(),
                    "integers must be within ±(2^53 − 1) to survive canonical JSON; send larger ones as strings",
                ));
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                let len = pointer.len();
                push_token(pointer, key);
                check_numbers(child, pointer)?;
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = pointer.len();
                push_token(pointer, &index.to_string());
                check_numbers(child, pointer)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Refuses documents whose views would take more than `MAX_RENDERED_BYTES` to keep.
fn check_view_budget(doc: &ConfigDocument) -> Result<()> {
    if doc.overrides.len() > MAX_OVERRIDES {
        return Err(Error::invalid(
            "/overrides",
            format!("at most {MAX_OVERRIDES} environments may have overrides"),
        ));
    }
    let variants = doc.ab_test.as_ref().map_or(0, |t| t.variants.len());
    if variants > MAX_VARIANTS {
        return Err(Error::invalid(
            "/abTest/variants",
            format!("at most {MAX_VARIANTS} variants are allowed"),
        ));
    }
    let environments = doc.overrides.len() + 3; // + default, canary's and test's environments
    let per_environment = (1 + usize::from(doc.canary.is_some())) * (1 + variants);
    // A merge patch adds at most its own size: a view is at most the base and the largest
    // patch of each layer it can take. Each view is kept twice: its canonical text and the
    // whole answer around it.
    let size = |value: &Value| serde_json::to_vec(value).map_or(0, |b| b.len());
    let largest = |values: &mut dyn Iterator<Item = &Value>| values.map(size).max().unwrap_or(0);
    let view_bytes = size(&doc.config)
        + largest(&mut doc.overrides.values())
        + doc.canary.as_ref().map_or(0, |c| size(&c.config))
        + doc
            .ab_test
            .as_ref()
            .map_or(0, |t| largest(&mut t.variants.iter().map(|v| &v.config)));
    if environments
        .saturating_mul(per_environment)
        .saturating_mul(view_bytes)
        .saturating_mul(2)
        > MAX_RENDERED_BYTES
    {
        return Err(Error::invalid(
            "/config",
            format!(
                "{environments} environments × {per_environment} views of up to {view_bytes} bytes \
                 (the config and its largest patches), each kept twice, exceed the \
                 {MAX_RENDERED_BYTES}-byte rendering budget; use fewer overrides or variants, or \
                 smaller patches"
            ),
        ));
    }
    Ok(())
}

/// Free text a client wrote (a reason, a description, a health check's output) holds no NUL:
/// PostgreSQL's text refuses it, and a batch of writes (other clients' included) would fail
/// with it.
pub fn refuse_nul(field: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

pub fn check_metadata(metadata: &Metadata) -> Result<()> {
    check_actor(&metadata.actor)?;
    // What the client called itself, when the actor is the identity it authenticated as.
    if let Some(named) = &metadata.on_behalf_of {
        check_actor(named)?;
    }
    if metadata
        .message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MESSAGE)
    {
        return Err(Error::invalid(
            "/metadata/message",
            format!("message must be at most {MAX_MESSAGE} characters"),
        ));
    }
    if metadata.message.as_ref().is_some_and(|m| m.contains('\0')) {
        return Err(Error::invalid(
            "/metadata/message",
            "message must not contain NUL characters",
        ));
    }
    Ok(())
}

fn check_actor(actor: &str) -> Result<()> {
    if actor.trim().is_empty() || actor.len() > MAX_ACTOR {
        return Err(Error::invalid(
            "/metadata/actor",
            format!("actor must be 1 to {MAX_ACTOR} characters"),
        ));
    }
    if actor.chars().any(char::is_control) {
        return Err(Error::invalid(
            "/metadata/actor",
            "actor must not contain control characters",
        ));
    }
    Ok(())
}

fn require_object(value: &Value, pointer: &str) -> Result<()> {
    if value.is_object() {
        Ok(())
    } else {
        Err(Error::invalid(pointer, "must be a JSON object"))
    }
}

fn check_name(name: &str, pointer: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            pointer,
            format!("must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(())
}

/// Every view of a checked document (base, environments, canary, variants), built when first
/// asked for: by the checks when the document has secret references, else by a schema check.
#[derive(Debug)]
pub struct DocumentViews<'d> {
    doc: &'d ConfigDocument,
    layers: OnceLock<Vec<LayerValue>>,
}

impl DocumentViews<'_> {
    pub fn layers(&self) -> &[LayerValue] {
        self.layers.get_or_init(|| all_layer_values(self.doc))
    }
}

/// Shape rules of DESIGN.md that JSON Schema cannot express. The first failure is returned;
/// on success, the document's views (built once, for the checks or for the schema).
pub fn check_document<'d>(
    doc: &'d ConfigDocument,
    secrets: &SecretResolver,
) -> Result<DocumentViews<'d>> {
    require_object(&doc.config, "/config")?;
    let mut references = reference_pointers(&doc.config, "/config", secrets)?.len();
    check_numbers(&doc.config, &mut "/config".to_owned())?;
    for (env, patch) in &doc.overrides {
        let pointer = format!("/overrides/{env}");
        Environment::parse_field(env, &pointer)?;
        require_object(patch, &pointer)?;
        references += reference_pointers(patch, &pointer, secrets)?.len();
        check_numbers(patch, &mut pointer.clone())?;
    }
    if let Some(canary) = &doc.canary {
        Environment::parse_field(&canary.environment, "/canary/environment")?;
        BasisPoints::from_percent(canary.traffic_percent, "/canary/trafficPercent")?;
        require_object(&canary.config, "/canary/config")?;
        references += reference_pointers(&canary.config, "/canary/config", secrets)?.len();
        check_numbers(&canary.config, &mut "/canary/config".to_owned())?;
        if canary.end_at.is_some_and(|end| end <= canary.start_at) {
            return Err(Error::invalid(
                "/canary/endAt",
                "endAt must be after startAt",
            ));
        }
    }
    if let Some(test) = &doc.ab_test {
        check_name(&test.name, "/abTest/name")?;
        if let Some(env) = &test.environment {
            Environment::parse_field(env, "/abTest/environment")?;
        }
        if test.variants.is_empty() {
            return Err(Error::invalid(
                "/abTest/variants",
                "at least one variant is required",
            ));
        }
        let mut names = HashSet::new();
        for (i, variant) in test.variants.iter().enumerate() {
            let pointer = format!("/abTest/variants/{i}");
            check_name(&variant.name, &format!("{pointer}/name"))?;
            if !names.insert(variant.name.as_str()) {
                return Err(Error::invalid(
                    format!("{pointer}/name"),
                    "variant names must be unique",
                ));
            }
            if variant.weight == 0 || variant.weight > u64::from(u32::MAX) {
                return Err(Error::invalid(
                    format!("{pointer}/weight"),
                    "weight must be an integer between 1 and 4294967295",
                ));
            }
            require_object(&variant.config, &format!("{pointer}/config"))?;
            references +=
                reference_pointers(&variant.config, &format!("{pointer}/config"), secrets)?.len();
            check_numbers(&variant.config, &mut format!("{pointer}/config"))?;
        }
    }
    check_view_budget(doc)?;
    let views = DocumentViews {
        doc,
        layers: OnceLock::new(),
    };
    // Merging can break a reference that is fine in every layer alone, e.g. an override that
    // adds a key next to "$secret"; check every view a caller can receive. Without a reference
    // in any layer (each object with a "$secret" member is one, or an error above), no view has
    // one either: merging only combines the layers' members.
    if references == 0 {
        return Ok(views);
    }
    for layer in views.layers() {
        reference_pointers(&layer.value, "", secrets).map_err(|error| match error {
            Error::InvalidInput { field, message } => Error::invalid(
                field,
                format!(
                    "{message} (in the merged view {})",
                    layer.scope.as_deref().unwrap_or("base")
                ),
            ),
            other => other,
        })?;
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> ConfigDocument {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn schema_violations_name_pointer_and_scope() {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"timeout": {"type": "integer", "maximum": 60}},
            "required": ["timeout"]
        }))
        .unwrap();
        let d =
            doc(json!({"config": {"timeout": 30}, "overrides": {"production": {"timeout": 90}}}));
        let violations = schema.check(&d, &SecretResolver::default());
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].pointer, "/timeout");
        assert_eq!(
            violations[0].scope.as_deref(),
            Some("environment=production")
        );
    }

    #[test]
    fn distinct_failures_at_the_same_pointer_are_each_reported() {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"timeout": {"type": "integer", "minimum": 1}}
        }))
        .unwrap();
        let d = doc(
            json!({"config": {"timeout": 0}, "overrides": {"staging": {"timeout": -1}, "prod": {"x": 1}}}),
        );
        let violations = schema.check(&d, &SecretResolver::default());
        let scopes: Vec<Option<&str>> = violations.iter().map(|v| v.scope.as_deref()).collect();
        assert_eq!(
            scopes,
            vec![None, Some("environment=staging")],
            "{violations:?}"
        );
    }

    #[test]
    fn merged_views_with_broken_secret_references_are_refused() {
        let d = doc(json!({
            "config": {"db": {"password": {"$secret": "env:DB_PASSWORD"}}},
            "overrides": {"production": {"db": {"password": {"rotate": true}}}}
        }));
        match check_document(&d, &SecretResolver::default()) {
            Err(Error::InvalidInput { field, message }) => {
                assert_eq!(field, "/db/password");
                assert!(message.contains("environment=production"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn views_are_every_layer_whether_the_checks_built_them_or_not() {
        let secrets = SecretResolver::default();
        let without = json!({"config": {"a": 1}, "overrides": {"production": {"a": 2}}});
        let with =
            json!({"config": {"p": {"$secret": "env:X"}}, "overrides": {"production": {"a": 2}}});
        for value in [without, with] {
            let d = doc(value);
            let views = check_document(&d, &secrets).unwrap();
            let layers: Vec<_> = views
                .layers()
                .iter()
                .map(|layer| (layer.scope.clone(), layer.value.clone()))
                .collect();
            let expected: Vec<_> = all_layer_values(&d)
                .into_iter()
                .map(|layer| (layer.scope, layer.value))
                .collect();
            assert_eq!(layers, expected);
            assert_eq!(layers.len(), 2);
        }
    }

    #[test]
    fn integers_canonical_json_would_round_are_refused() {
        let secrets = SecretResolver::default();
        let ok = doc(
            json!({"config": {"n": 9007199254740991_u64, "m": -9007199254740991_i64, "f": 1e300}}),
        );
        assert!(check_document(&ok, &secrets).is_ok());
        let big = doc(json!({"config": {"ids": [1, 9007199254740993_u64]}}));
        match check_document(&big, &secrets) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "/config/ids/1"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn documents_whose_views_exceed_the_rendering_budget_are_refused() {
        let secrets = SecretResolver::default();
        let big_base = json!({"blob": "x".repeat(1_200_000)});
        let overrides: serde_json::Map<String, Value> = (0..60)
            .map(|i| (format!("env{i}"), json!({"i": i})))
            .collect();
        let d = doc(json!({"config": big_base, "overrides": overrides}));
        match check_document(&d, &secrets) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "/config"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let too_many: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("env{i}"), json!({}))).collect();
        let d = doc(json!({"config": {}, "overrides": too_many}));
        assert!(
            matches!(check_document(&d, &secrets), Err(Error::InvalidInput { field, .. }) if field == "/overrides")
        );
    }

    #[test]
    fn secret_references_are_not_checked_against_the_schema() {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"password": {"type": "string"}}
        }))
        .unwrap();
        let d = doc(json!({"config": {"password": {"$secret": "env:DB_PASSWORD"}}}));
        assert!(schema.check(&d, &SecretResolver::default()).is_empty());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        assert!(CompiledSchema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(CompiledSchema::compile(&json!([1])).is_err());
    }

    #[test]
    fn document_shape_errors_name_the_field() {
        let secrets = SecretResolver::default();
        let cases = [
            (json!({"config": [1]}), "/config"),
            (
                json!({"config": {}, "overrides": {"Prod": {}}}),
                "/overrides/Prod",
            ),
            (
                json!({"config": {}, "canary": {"environment": "p", "trafficPercent": 101, "config": {}, "startAt": "2026-01-01T00:00:00Z"}}),
                "/canary/trafficPercent",
            ),
            (
                json!({"config": {}, "abTest": {"name": "t", "variants": [{"name": "a", "weight": 0, "config": {}}]}}),
                "/abTest/variants/0/weight",
            ),
            (
                json!({"config": {}, "abTest": {"name": "t", "variants": []}}),
                "/abTest/variants",
            ),
        ];
        for (value, field) in cases {
            match check_document(&doc(value), &secrets) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected error at {field}, got {other:?}"),
            }
        }
    }
}

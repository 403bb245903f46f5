//! Effective configuration: base ⊕ override[env] ⊕ canary patch ⊕ variant patch.
//!
//! Every view a version can produce is rendered once (canonical JSON + checksum) so a read is a
//! lookup plus a bucket computation.

use crate::core::ids::Touched;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::checksum::{canonical_bytes, checksum_of_bytes};
use super::error::Result;
use super::merge::merged;
use super::model::{Canary, ConfigDocument, ConfigVersion};
use super::rollout::{
    BasisPoints, ab_namespace, bucket, bucket_from_value, canary_namespace, choose_variant,
};

/// How the caller identifies itself for canary and A/B assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum AssignmentInput {
    None,
    Key(String),
    /// In [0, 1): stands for `bucket / 2^64` in every namespace.
    Value(f64),
}

impl AssignmentInput {
    /// An assignment key: 1 to 1024 bytes.
    pub fn key(key: String) -> Result<Self> {
        if key.is_empty() || key.len() > 1024 {
            return Err(crate::core::error::Error::invalid(
                "assignmentKey",
                "assignmentKey must be 1 to 1024 bytes",
            ));
        }
        Ok(AssignmentInput::Key(key))
    }

    fn bucket(&self, namespace: &str) -> Result<Option<u64>> {
        match self {
            AssignmentInput::None => Ok(None),
            AssignmentInput::Key(key) => Ok(Some(bucket(namespace, key))),
            AssignmentInput::Value(value) => bucket_from_value(*value).map(Some),
        }
    }
}

/// Which layers applied to a caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub canary: bool,
    pub variant: Option<String>,
}

/// One view (an effective config for one environment and assignment), ready to send.
#[derive(Debug)]
pub struct Rendered {
    /// Canonical (RFC 8785) JSON text of the effective config. No parsed `Value` is kept: the
    /// hot path never needs one, and leaving it out halves the memory and keeps reads in cache.
    pub json: Box<RawValue>,
    pub checksum: String,
    /// Strong ETag of `document` (quoted hex SHA-256 of its bytes): it changes whenever
    /// anything in the response does, the version number included. Shared bytes: a response
    /// header is made from them without copying.
    pub etag: Bytes,
    /// Which layers make up this view.
    pub assignment: Assignment,
    /// The environment `document` names (`None` for the view shared by other environments).
    pub environment: Option<String>,
    /// The whole effective document (see `effective_document`) for `environment`.
    pub document: Bytes,
}

/// Whose view is being rendered: enough to write the whole effective document.
struct ViewContext<'a> {
    config_id: &'a str,
    version: u64,
    environment: Option<&'a str>,
}

impl Rendered {
    /// The effective config as a JSON value (parsed on demand; the text is canonical JSON).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.json.get()).expect("rendered JSON parses")
    }

    fn new(value: Value, assignment: Assignment, context: &ViewContext<'_>) -> Arc<Self> {
        let canonical = canonical_bytes(&value);
        let checksum = checksum_of_bytes(&canonical);
        let text = String::from_utf8(canonical).expect("canonical JSON is UTF-8");
        let json = RawValue::from_string(text).expect("canonical JSON is valid JSON");
        let document = effective_document(&EffectiveDocument {
            config_id: context.config_id,
            version: context.version,
            environment: context.environment,
            effective_config: EffectiveJson::Rendered(&json),
            checksum: &checksum,
            assignment: &assignment,
        });
        Arc::new(Rendered {
            json,
            etag: Bytes::from(document_etag(&document)),
            checksum,
            assignment,
            environment: context.environment.map(str::to_owned),
            document: Bytes::from(document),
        })
    }
}

/// The effective config as JSON: pre-rendered canonical text, or a value with secrets resolved.
#[derive(Serialize)]
#[serde(untagged)]
pub enum EffectiveJson<'a> {
    Rendered(&'a RawValue),
    Resolved(&'a Value),
}

/// What a read of the effective config returns, on every transport that speaks JSON.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveDocument<'a> {
    pub config_id: &'a str,
    pub version: u64,
    pub environment: Option<&'a str>,
    #[schema(value_type = Object)]
    pub effective_config: EffectiveJson<'a>,
    pub checksum: &'a str,
    pub assignment: &'a Assignment,
}

/// The strong ETag of an effective document's bytes.
pub fn document_etag(document: &[u8]) -> String {
    format!("\"{}\"", checksum_of_bytes(document))
}

pub fn effective_document(document: &EffectiveDocument<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    serde_json::to_writer(&mut out, document).expect("an effective document always serializes");
    out
}

/// The views of one environment: control, canary, and each variant with and without the canary.
#[derive(Debug)]
pub struct EnvLayers {
    pub control: Arc<Rendered>,
    pub canary: Option<Arc<Rendered>>,
    pub variants: Vec<Arc<Rendered>>,
    pub canary_variants: Vec<Arc<Rendered>>,
}

/// Every view of one version, by environment, and what assignment needs, computed once.
#[derive(Debug)]
pub struct EffectiveLayers {
    /// Few entries: a scan beats hashing and touches less memory.
    by_env: Vec<(String, EnvLayers)>,
    /// Environments with no layer of their own (and requests without an environment).
    default: EnvLayers,
    canary_share: Option<BasisPoints>,
    canary_namespace: String,
    ab_namespace: String,
    weights: Vec<u64>,
}

/// One raw (unrendered) view with the scope it belongs to, for validation.
#[derive(Debug)]
pub struct LayerValue {
    pub scope: Option<String>,
    pub value: Value,
}

struct EnvValues {
    control: Value,
    canary: Option<Value>,
    variants: Vec<Value>,
    canary_variants: Vec<Value>,
}

fn env_values(doc: &ConfigDocument, env: Option<&str>) -> EnvValues {
    let control = match env.and_then(|e| doc.overrides.get(e)) {
        Some(patch) => merged(&doc.config, patch),
        None => doc.config.clone(),
    };
    let canary = doc
        .canary
        .as_ref()
        .filter(|c| Some(c.environment.as_str()) == env)
        .map(|c| merged(&control, &c.config));
    let test = doc
        .ab_test
        .as_ref()
        .filter(|t| t.environment.is_none() || t.environment.as_deref() == env);
    let patch_all = |base: &Value| -> Vec<Value> {
        test.map(|t| t.variants.iter().map(|v| merged(base, &v.config)).collect())
            .unwrap_or_default()
    };
    let variants = patch_all(&control);
    let canary_variants = canary.as_ref().map(patch_all).unwrap_or_default();
    EnvValues {
        control,
        canary,
        variants,
        canary_variants,
    }
}

/// Environments that have a layer of their own in this document.
fn layered_environments(doc: &ConfigDocument) -> Vec<String> {
    let mut envs: Vec<String> = doc.overrides.keys().cloned().collect();
    envs.extend(doc.canary.as_ref().map(|c| c.environment.clone()));
    envs.extend(doc.ab_test.as_ref().and_then(|t| t.environment.clone()));
    envs.sort();
    envs.dedup();
    envs
}

/// Every view of a document with a human-readable scope, for schema validation.
pub fn all_layer_values(doc: &ConfigDocument) -> Vec<LayerValue> {
    let variant_names: Vec<&str> = doc
        .ab_test
        .as_ref()
        .map(|t| t.variants.iter().map(|v| v.name.as_str()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut push_env = |env: Option<&str>, values: EnvValues| {
        let base_scope = env.map(|e| format!("environment={e}"));
        let join = |extra: String| match &base_scope {
            Some(s) => format!("{s},{extra}"),
            None => extra,
        };
        out.push(LayerValue {
            scope: base_scope.clone(),
            value: values.control,
        });
        if let Some(canary) = values.canary {
            out.push(LayerValue {
                scope: Some(join("canary".into())),
                value: canary,
            });
        }
        for (name, value) in variant_names.iter().zip(values.variants) {
            out.push(LayerValue {
                scope: Some(join(format!("variant={name}"))),
                value,
            });
        }
        for (name, value) in variant_names.iter().zip(values.canary_variants) {
            out.push(LayerValue {
                scope: Some(join(format!("canary,variant={name}"))),
                value,
            });
        }
    };
    push_env(None, env_values(doc, None));
    for env in layered_environments(doc) {
        push_env(Some(&env), env_values(doc, Some(&env)));
    }
    out
}

fn render(values: EnvValues, variant_names: &[String], context: &ViewContext<'_>) -> EnvLayers {
    let assignment = |canary: bool, variant: Option<&String>| Assignment {
        canary,
        variant: variant.cloned(),
    };
    let variants = |views: Vec<Value>, canary: bool| -> Vec<Arc<Rendered>> {
        views
            .into_iter()
            .zip(variant_names)
            .map(|(value, name)| Rendered::new(value, assignment(canary, Some(name)), context))
            .collect()
    };
    EnvLayers {
        control: Rendered::new(values.control, assignment(false, None), context),
        canary: values
            .canary
            .map(|value| Rendered::new(value, assignment(true, None), context)),
        variants: variants(values.variants, false),
        canary_variants: variants(values.canary_variants, true),
    }
}

impl EffectiveLayers {
    pub fn compile(config_id: &str, version: u64, doc: &ConfigDocument) -> Self {
        let test = doc.ab_test.as_ref();
        let variant_names: Vec<String> = test
            .map(|t| t.variants.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        let by_env = layered_environments(doc)
            .into_iter()
            .map(|env| {
                let context = ViewContext {
                    config_id,
                    version,
                    environment: Some(&env),
                };
                let layers = render(env_values(doc, Some(&env)), &variant_names, &context);
                (env, layers)
            })
            .collect();
        EffectiveLayers {
            by_env,
            default: render(
                env_values(doc, None),
                &variant_names,
                &ViewContext {
                    config_id,
                    version,
                    environment: None,
                },
            ),
            // Validated at write time; an unparsable stored share disables the canary.
            canary_share: doc
                .canary
                .as_ref()
                .and_then(|c| BasisPoints::from_percent(c.traffic_percent, "trafficPercent").ok()),
            canary_namespace: canary_namespace(config_id),
            ab_namespace: test
                .map(|t| ab_namespace(config_id, &t.name))
                .unwrap_or_default(),
            weights: test
                .map(|t| t.variants.iter().map(|v| v.weight).collect())
                .unwrap_or_default(),
        }
    }

    pub fn for_env(&self, env: Option<&str>) -> &EnvLayers {
        env.and_then(|e| self.by_env.iter().find(|(name, _)| name == e))
            .map_or(&self.default, |(_, layers)| layers)
    }
}

/// The compiled views of a version, rendered on first use.
pub fn layers_of(version: &ConfigVersion) -> Result<&EffectiveLayers> {
    version.view(|version| {
        EffectiveLayers::compile(version.id.as_str(), version.version, &version.document)
    })
}

fn canary_active(canary: &Canary, now: DateTime<Utc>) -> bool {
    canary.start_at <= now && canary.end_at.is_none_or(|end| now < end)
}

/// Picks the view for a caller; the view says which layers applied. `now` is asked only of a
/// document with a canary (most reads have none, and need no clock).
pub fn select(
    version: &ConfigVersion,
    env: Option<&str>,
    input: &AssignmentInput,
    now: impl FnOnce() -> DateTime<Utc>,
) -> Result<Arc<Rendered>> {
    if let AssignmentInput::Value(value) = input {
        bucket_from_value(*value)?;
    }
    let doc = &version.document;
    let compiled = layers_of(version)?;
    let layers = compiled.for_env(env);

    let in_canary = match (&doc.canary, &layers.canary, compiled.canary_share) {
        (Some(canary), Some(_), Some(share)) if canary_active(canary, now()) => input
            .bucket(&compiled.canary_namespace)?
            .is_some_and(|b| share.includes(b)),
        _ => false,
    };
    let variant = if layers.variants.is_empty() {
        None
    } else {
        input
            .bucket(&compiled.ab_namespace)?
            .and_then(|b| choose_variant(b, &compiled.weights))
    };
    let view = match (in_canary, variant) {
        (false, None) => &layers.control,
        (true, None) => layers.canary.as_ref().expect("canary view exists"),
        (false, Some(i)) => &layers.variants[i],
        (true, Some(i)) => &layers.canary_variants[i],
    };
    Ok(view.clone())
}

/// Checksums of every view currently valid for `env` (control, active canary, variants).
pub fn valid_checksums<'a>(
    version: &'a ConfigVersion,
    env: &str,
    now: DateTime<Utc>,
) -> Result<Vec<&'a str>> {
    let layers = layers_of(version)?.for_env(Some(env));
    let canary_on = version
        .document
        .canary
        .as_ref()
        .is_some_and(|c| canary_active(c, now));
    let mut out = vec![layers.control.checksum.as_str()];
    out.extend(layers.variants.iter().map(|r| r.checksum.as_str()));
    if canary_on {
        out.extend(layers.canary.iter().map(|r| r.checksum.as_str()));
        out.extend(layers.canary_variants.iter().map(|r| r.checksum.as_str()));
    }
    Ok(out)
}

/// Environments whose effective views differ between two documents; every one when the base
/// differs (or there was none).
pub fn changed_environments(old: Option<&ConfigDocument>, new: &ConfigDocument) -> Touched {
    let Some(old) = old else {
        return Touched::Every;
    };
    if old.config != new.config {
        return Touched::Every;
    }
    let ab_changed = old.ab_test != new.ab_test;
    // `Some(None)`: a test for every environment; `Some(Some(env))`: for one.
    fn test_env(doc: &ConfigDocument) -> Option<Option<&str>> {
        doc.ab_test.as_ref().map(|t| t.environment.as_deref())
    }
    if ab_changed && (test_env(old) == Some(None) || test_env(new) == Some(None)) {
        return Touched::Every;
    }
    fn canary_of<'a>(doc: &'a ConfigDocument, env: &str) -> Option<&'a Canary> {
        doc.canary.as_ref().filter(|c| c.environment == env)
    }
    let mut envs = layered_environments(old);
    envs.extend(layered_environments(new));
    envs.sort();
    envs.dedup();
    envs.retain(|env| {
        let test_here = |doc: &ConfigDocument| test_env(doc) == Some(Some(env.as_str()));
        old.overrides.get(env) != new.overrides.get(env)
            || canary_of(old, env) != canary_of(new, env)
            || (ab_changed && (test_here(old) || test_here(new)))
    });
    Touched::Only(envs)
}

#[cfg(test)]
mod tests;

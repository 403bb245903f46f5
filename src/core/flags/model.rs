//! What a feature flag is: its variants, and how each environment chooses among them.
//! The JSON shape is the API's (docs/flags.md); `compile` checks and prepares it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::ids::{FlagKey, Touched};
use crate::core::versioned::{Document, DocumentKind, Head, NewVersion, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    Boolean,
    String,
    Number,
    Object,
}

impl FlagType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }

    pub fn admits(self, value: &Value) -> bool {
        match self {
            FlagType::Boolean => value.is_boolean(),
            FlagType::String => value.is_string(),
            FlagType::Number => value.is_number(),
            FlagType::Object => value.is_object(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A flag as written: the same shape is stored, returned and versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// Variant name → value; every value has the flag's type.
    pub variants: BTreeMap<String, Value>,
    pub default_variant: String,
    /// Services the flag is meant for (bulk evaluation for a service lists only these); empty
    /// means every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The targeting of environments that have no entry in `environments`.
    #[serde(default = "enabled_by_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Per-environment targeting, replacing the flag-level one there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, EnvironmentTargeting>,
}

/// How one environment chooses a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentTargeting {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Served when no rule matches (and when disabled); the flag's `defaultVariant` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// `percentage` of targeting keys (bucketed in `flag:{key}:default`) get `variant` when no rule
/// matched; the rest get the default variant. Raising the percentage keeps everyone who was in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = FlagRollout)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    pub variant: String,
    pub percentage: f64,
}

/// An ordered targeting rule: the first rule whose conditions, target keys and prerequisites
/// all hold serves its variant (or splits across variants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Unique within its targeting; names the bucketing namespace `flag:{key}:{id}`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When given, the context's `targetingKey` must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Weighted split across variants (instead of `variant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<SplitShare>,
    /// Only this share of matching keys gets `variant`; the others go on to the next rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitShare {
    pub variant: String,
    pub weight: u64,
}

/// Holds when the flag `flag_key`, evaluated for the same context and environment, serves one
/// of `variants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisite {
    pub flag_key: String,
    pub variants: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// A context attribute (`targetingKey` included).
    pub attribute: String,
    pub operator: Operator,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Neq,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Gt,
    Gte,
    Lt,
    Lte,
    SemverEq,
    SemverGt,
    SemverLt,
    Before,
    After,
}

impl Document for FlagDefinition {
    type Id = FlagKey;
    const KIND: DocumentKind = DocumentKind::Flag;
}

/// One immutable version of a flag; its checksum is SHA-256 of the canonical definition.
pub type FlagVersion = Version<FlagDefinition>;
/// The newest version of a flag and whether the flag is deleted.
pub type FlagHead = Head<FlagDefinition>;
/// A flag version before the store numbers it.
pub type NewFlagVersion = NewVersion<FlagDefinition>;

/// Environments whose evaluation a change can affect: `*` when flag-wide fields changed.
pub fn changed_environments(previous: Option<&FlagDefinition>, next: &FlagDefinition) -> Touched {
    let Some(previous) = previous else {
        return Touched::Every;
    };
    // Every field but `environments` is flag-wide: it reaches every environment.
    let flag_wide_equal = previous.description == next.description
        && previous.flag_type == next.flag_type
        && previous.variants == next.variants
        && previous.default_variant == next.default_variant
        && previous.services == next.services
        && previous.enabled == next.enabled
        && previous.rollout == next.rollout
        && previous.rules == next.rules;
    if !flag_wide_equal {
        return Touched::Every;
    }
    let names: HashSet<&String> = previous
        .environments
        .keys()
        .chain(next.environments.keys())
        .collect();
    let mut changed: Vec<String> = names
        .into_iter()
        .filter(|env| previous.environments.get(*env) != next.environments.get(*env))
        .cloned()
        .collect();
    changed.sort();
    Touched::Only(changed)
}

/// Every flag's head at one moment, by key: what evaluation reads.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    pub heads: BTreeMap<FlagKey, FlagHead>,
}

impl FlagSet {
    pub fn live(&self, key: &str) -> Option<&Arc<FlagVersion>> {
        self.heads
            .get(key)
            .filter(|head| !head.deleted)
            .map(|head| &head.latest)
    }
}

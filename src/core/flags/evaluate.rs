//! Flag evaluation: for a context and an environment, which variant a flag serves and why.
//! Pure and deterministic: the same flag version, environment and context always give the same
//! answer, on every replica and in every client that reproduces the bucketing.

use serde::Serialize;
use serde_json::Value;

pub use super::context::{Attributes, EvaluationContext};

use super::compile::{CompiledFlag, CompiledRule, Serve, Test, compile, parse_date, parse_semver};
use super::model::{FlagSet, FlagVersion};
use crate::core::rollout::{bucket, choose_variant};

/// Prerequisite chains deeper than this are refused at evaluation (writes refuse cycles, but
/// two concurrent writes could still close one).
pub const MAX_PREREQUISITE_DEPTH: usize = 8;

/// Why a flag served what it served (OpenFeature's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// No targeting in this environment: everyone gets the default variant.
    Static,
    /// A rule's conditions or target keys matched.
    TargetingMatch,
    /// A percentage rollout or a weighted split chose the variant.
    Split,
    /// The flag is disabled in this environment: the default variant is served.
    Disabled,
    /// Targeting exists but nothing matched: the default variant.
    Default,
    Error,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
            Reason::Error => "ERROR",
        }
    }
}

/// OpenFeature's error codes, as OFREP spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EvaluationErrorCode {
    FlagNotFound,
    TargetingKeyMissing,
    InvalidContext,
    ParseError,
    General,
}

impl EvaluationErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            EvaluationErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            EvaluationErrorCode::InvalidContext => "INVALID_CONTEXT",
            EvaluationErrorCode::ParseError => "PARSE_ERROR",
            EvaluationErrorCode::General => "GENERAL",
        }
    }
}

/// A served variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub variant: String,
    pub value: Value,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationFailure {
    pub code: EvaluationErrorCode,
    pub message: String,
}

/// One flag's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub key: String,
    /// The flag version evaluated; 0 when the flag was not found.
    pub version: u64,
    pub outcome: std::result::Result<Resolution, EvaluationFailure>,
}

impl Evaluation {
    pub fn not_found(key: &str) -> Self {
        Evaluation {
            key: key.to_owned(),
            version: 0,
            outcome: Err(EvaluationFailure {
                code: EvaluationErrorCode::FlagNotFound,
                message: format!("flag '{key}' not found"),
            }),
        }
    }
}

fn failure(code: EvaluationErrorCode, message: impl Into<String>) -> EvaluationFailure {
    EvaluationFailure {
        code,
        message: message.into(),
    }
}

/// The compiled form of `flag`, built on first use.
pub fn compiled(flag: &FlagVersion) -> std::result::Result<&CompiledFlag, EvaluationFailure> {
    let general = |message: String| failure(EvaluationErrorCode::General, message);
    let made = flag.view(|flag| compile(&flag.id, &flag.document).map_err(|e| e.to_string()));
    match made {
        Ok(Ok(compiled)) => Ok(compiled),
        Ok(Err(error)) => Err(general(format!(
            "stored flag definition is invalid: {error}"
        ))),
        Err(error) => Err(general(error.to_string())),
    }
}

/// Evaluates `flag` for `context` in `environment` (prerequisites are looked up in `flags`).
pub fn evaluate(
    flags: &FlagSet,
    flag: &FlagVersion,
    environment: Option<&str>,
    context: &EvaluationContext,
) -> Evaluation {
    Evaluation {
        key: flag.id.as_str().to_owned(),
        version: flag.version,
        outcome: resolve(
            flags,
            flag,
            environment,
            context,
            0,
            &mut Prerequisites::new(),
        ),
    }
}

/// Variants served by prerequisite flags, each resolved once per evaluation however many
/// rules name it (without this, rules naming rules naming rules multiply the work).
type Prerequisites =
    std::collections::HashMap<String, std::result::Result<String, EvaluationFailure>>;

fn resolve(
    flags: &FlagSet,
    flag: &FlagVersion,
    environment: Option<&str>,
    context: &EvaluationContext,
    depth: usize,
    served: &mut Prerequisites,
) -> std::result::Result<Resolution, EvaluationFailure> {
    let compiled = compiled(flag)?;
    let targeting = compiled.targeting(environment);
    let serve =
        |variant: &str, reason: Reason| -> std::result::Result<Resolution, EvaluationFailure> {
            let value = flag.document.variants.get(variant).ok_or_else(|| {
                failure(
                    EvaluationErrorCode::General,
                    format!("variant '{variant}' is not defined"),
                )
            })?;
            Ok(Resolution {
                variant: variant.to_owned(),
                value: value.clone(),
                reason,
            })
        };
    if !targeting.enabled {
        return serve(&targeting.default_variant, Reason::Disabled);
    }
    if targeting.rules.is_empty() && targeting.rollout.is_none() {
        return serve(&targeting.default_variant, Reason::Static);
    }
    for rule in &targeting.rules {
        if !rule_matches(flags, rule, environment, context, depth, served)? {
            continue;
        }
        match &rule.serve {
            Serve::Variant(variant) => return serve(variant, Reason::TargetingMatch),
            Serve::Percentage(variant, share) => {
                if share.includes(bucket(&rule.namespace, key_of(context)?)) {
                    return serve(variant, Reason::Split);
                }
            }
            Serve::Split { variants, weights } => {
                let slot = bucket(&rule.namespace, key_of(context)?);
                let index = choose_variant(slot, weights).unwrap_or(0);
                return serve(&variants[index], Reason::Split);
            }
        }
    }
    match &targeting.rollout {
        Some((variant, share, namespace))
            if share.includes(bucket(namespace, key_of(context)?)) =>
        {
            serve(variant, Reason::Split)
        }
        _ => serve(&targeting.default_variant, Reason::Default),
    }
}

fn key_of(context: &EvaluationContext) -> std::result::Result<&str, EvaluationFailure> {
    context.targeting_key.as_deref().ok_or_else(|| {
        failure(
            EvaluationErrorCode::TargetingKeyMissing,
            "this flag splits traffic by targetingKey; the context has none",
        )
    })
}

fn rule_matches(
    flags: &FlagSet,
    rule: &CompiledRule,
    environment: Option<&str>,
    context: &EvaluationContext,
    depth: usize,
    served: &mut Prerequisites,
) -> std::result::Result<bool, EvaluationFailure> {
    if !rule.target_keys.is_empty() {
        match &context.targeting_key {
            Some(key) if rule.target_keys.contains(key) => {}
            _ => return Ok(false),
        }
    }
    for condition in &rule.conditions {
        let Some(actual) = context.attribute(&condition.attribute) else {
            return Ok(false); // a missing attribute matches no condition
        };
        if !test(&condition.test, &actual) {
            return Ok(false);
        }
    }
    for prerequisite in &rule.prerequisites {
        if depth >= MAX_PREREQUISITE_DEPTH {
            return Err(failure(
                EvaluationErrorCode::General,
                "prerequisites nest too deeply (or form a cycle)",
            ));
        }
        let variant = match served.get(&prerequisite.flag_key) {
            Some(known) => known.clone()?,
            None => {
                let outcome = match flags.live(&prerequisite.flag_key) {
                    Some(required) => {
                        resolve(flags, required, environment, context, depth + 1, served)
                            .map(|r| r.variant)
                    }
                    // Deleted since the rule was written (another replica's delete raced the
                    // dependency check): an error, not a silent non-match.
                    None => Err(failure(
                        EvaluationErrorCode::General,
                        format!(
                            "prerequisite flag '{}' does not exist",
                            prerequisite.flag_key
                        ),
                    )),
                };
                served.insert(prerequisite.flag_key.clone(), outcome.clone());
                outcome?
            }
        };
        if !prerequisite.variants.contains(&variant) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn scalar_equals(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => expected == actual,
    }
}

fn test(test: &Test, actual: &Value) -> bool {
    match test {
        Test::Equals(expected) => scalar_equals(expected, actual),
        Test::NotEquals(expected) => !scalar_equals(expected, actual),
        Test::OneOf(values) => values.iter().any(|v| scalar_equals(v, actual)),
        Test::NoneOf(values) => !values.iter().any(|v| scalar_equals(v, actual)),
        Test::Contains(needle) => match actual {
            Value::String(s) => s.contains(needle.as_str()),
            Value::Array(items) => items.iter().any(|i| i.as_str() == Some(needle.as_str())),
            _ => false,
        },
        Test::StartsWith(prefix) => actual
            .as_str()
            .is_some_and(|s| s.starts_with(prefix.as_str())),
        Test::EndsWith(suffix) => actual
            .as_str()
            .is_some_and(|s| s.ends_with(suffix.as_str())),
        Test::Matches(regex) => actual.as_str().is_some_and(|s| regex.is_match(s)),
        Test::Number(order, expected) => actual
            .as_f64()
            .and_then(|a| a.partial_cmp(expected))
            .is_some_and(|ordering| order.holds(ordering)),
        Test::Semver(order, expected) => actual
            .as_str()
            .and_then(parse_semver)
            .is_some_and(|a| order.holds(a.cmp_precedence(expected))),
        Test::Date(order, expected) => {
            parse_date(actual).is_some_and(|a| order.holds(a.cmp(expected)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::flags::model::{FlagDefinition, FlagHead, NewFlagVersion};
    use crate::core::ids::FlagKey;
    use crate::core::model::Metadata;
    use serde_json::json;

    fn version(key: &str, definition: Value) -> Arc<FlagVersion> {
        let definition: FlagDefinition = serde_json::from_value(definition).unwrap();
        Arc::new(
            NewFlagVersion {
                id: FlagKey::parse(key).unwrap(),
                document: definition,
                metadata: Metadata {
                    actor: "test".into(),
                    message: None,
                    ..Default::default()
                },
                checksum: String::new(),
                created_at: chrono::Utc::now(),
                rollback_of: None,
            }
            .numbered(1),
        )
    }

    fn set_of(flags: &[Arc<FlagVersion>]) -> FlagSet {
        FlagSet {
            heads: flags
                .iter()
                .map(|f| {
                    let head = FlagHead {
                        latest: f.clone(),
                        deleted: false,
                    };
                    (f.id.clone(), head)
                })
                .collect(),
        }
    }

    fn user(key: &str) -> EvaluationContext {
        EvaluationContext {
            targeting_key: Some(key.into()),
            attributes: Attributes::default(),
        }
    }

    #[test]
    fn raising_a_rule_percentage_never_removes_a_key() {
        let mut was_on = vec![false; 10_000];
        for percentage in [1.0, 10.0, 10.01, 33.33, 75.0, 100.0] {
            let flag = version(
                "gradual",
                json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                       "rules": [{"id": "everyone", "variant": "on", "percentage": percentage}]}),
            );
            let set = set_of(std::slice::from_ref(&flag));
            let mut on = 0;
            for (i, was) in was_on.iter_mut().enumerate() {
                let result = evaluate(&set, &flag, None, &user(&format!("k{i}")));
                let now = result.outcome.unwrap().value == json!(true);
                assert!(!*was || now, "k{i} left at {percentage}%");
                *was = now;
                on += usize::from(now);
            }
            let share = on as f64 / 100.0;
            assert!(
                (share - percentage).abs() <= 1.0,
                "{percentage}% gave {share}%"
            );
        }
    }

    #[test]
    fn split_shares_follow_the_weights() {
        let flag = version(
            "split",
            json!({"type": "string", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a",
                   "rules": [{"id": "r", "split": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 3}]}]}),
        );
        let set = set_of(std::slice::from_ref(&flag));
        let b = (0..20_000)
            .filter(|i| {
                let result = evaluate(&set, &flag, None, &user(&format!("u{i}")));
                result.outcome.unwrap().variant == "b"
            })
            .count();
        let share = b as f64 / 200.0;
        assert!((share - 75.0).abs() <= 1.0, "b got {share}%");
    }

    #[test]
    fn a_prerequisite_cycle_is_an_error_not_a_hang() {
        let rule = |other: &str| {
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "rules": [{"id": "r", "prerequisites": [{"flagKey": other, "variants": ["on"]}], "variant": "on"}]})
        };
        let (a, b) = (version("a", rule("b")), version("b", rule("a")));
        let set = set_of(&[a.clone(), b]);
        let result = evaluate(&set, &a, None, &user("k"));
        assert_eq!(
            result.outcome.unwrap_err().code,
            EvaluationErrorCode::General
        );
    }

    #[test]
    fn a_context_without_a_targeting_key_only_fails_where_bucketing_is_needed() {
        let flag = version(
            "mixed",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "rules": [{"id": "admins", "conditions": [{"attribute": "role", "operator": "eq", "value": "admin"}], "variant": "on"}],
                   "rollout": {"variant": "on", "percentage": 50}}),
        );
        let set = set_of(std::slice::from_ref(&flag));
        let mut admin = EvaluationContext::default();
        admin.attributes.insert("role".into(), json!("admin"));
        let served = evaluate(&set, &flag, None, &admin).outcome.unwrap();
        assert_eq!(
            (served.variant.as_str(), served.reason),
            ("on", Reason::TargetingMatch)
        );
        let anonymous = evaluate(&set, &flag, None, &EvaluationContext::default());
        assert_eq!(
            anonymous.outcome.unwrap_err().code,
            EvaluationErrorCode::TargetingKeyMissing
        );
    }
}

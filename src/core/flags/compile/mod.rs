//! Checks a flag definition and prepares it for evaluation: every refusal names a JSON pointer,
//! and what is expensive (regexes, versions, dates, namespaces) is built once per version.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::{
    EnvironmentTargeting, FlagDefinition, FlagType, Operator, Prerequisite, Rollout, Rule,
};
use crate::core::error::{Error, Result};
use crate::core::ids::{Environment, FlagKey};
use crate::core::rollout::{BasisPoints, flag_namespace};
use crate::core::secrets::push_token;
use crate::core::validation::check_numbers;

mod conditions;

use conditions::compile_condition;
pub use conditions::{parse_date, parse_semver};

pub const MAX_VARIANTS: usize = 64;
pub const MAX_RULES: usize = 200;
pub const MAX_CONDITIONS: usize = 32;
pub const MAX_LIST: usize = 10_000;
/// Prerequisites per rule.
pub const MAX_PREREQUISITES: usize = 8;
/// Regex conditions per flag, and their pattern bytes together: each is compiled per version
/// on every replica.
const MAX_REGEXES: usize = 64;
const MAX_REGEX_BYTES: usize = 64 * 1024;
const MAX_SPLIT: usize = 32;
const MAX_ENVIRONMENTS: usize = 64;
const MAX_SERVICES: usize = 256;
const MAX_NAME: usize = 64;
const MAX_TEXT: usize = 1024;
const MAX_DESCRIPTION: usize = 4096;
/// Compiled regex programs are bounded, so a pattern cannot make matching slow or huge.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
const REGEX_DFA_LIMIT: usize = 256 * 1024;

/// A flag ready to evaluate.
#[derive(Debug)]
pub struct CompiledFlag {
    pub flag_type: FlagType,
    pub fallback: Targeting,
    pub environments: HashMap<String, Targeting>,
}

impl CompiledFlag {
    pub fn targeting(&self, environment: Option<&str>) -> &Targeting {
        environment
            .and_then(|env| self.environments.get(env))
            .unwrap_or(&self.fallback)
    }
}

#[derive(Debug)]
pub struct Targeting {
    pub enabled: bool,
    pub default_variant: String,
    /// `(variant, share, namespace)` of the environment's own rollout.
    pub rollout: Option<(String, BasisPoints, String)>,
    pub rules: Vec<CompiledRule>,
}

#[derive(Debug)]
pub struct CompiledRule {
    pub namespace: String,
    pub conditions: Vec<CompiledCondition>,
    pub target_keys: HashSet<String>,
    pub prerequisites: Vec<Prerequisite>,
    pub serve: Serve,
}

#[derive(Debug)]
pub enum Serve {
    Variant(String),
    /// Only a share of matching keys; the rest go on to the next rule.
    Percentage(String, BasisPoints),
    Split {
        variants: Vec<String>,
        weights: Vec<u64>,
    },
}

#[derive(Debug)]
pub struct CompiledCondition {
    pub attribute: String,
    pub test: Test,
}

#[derive(Debug, Clone, Copy)]
pub enum Order {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

impl Order {
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Order::Less => ordering == Less,
            Order::LessOrEqual => ordering != Greater,
            Order::Equal => ordering == Equal,
            Order::GreaterOrEqual => ordering != Less,
            Order::Greater => ordering == Greater,
        }
    }
}

#[derive(Debug)]
pub enum Test {
    Equals(Value),
    NotEquals(Value),
    OneOf(Vec<Value>),
    NoneOf(Vec<Value>),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Matches(regex::Regex),
    Number(Order, f64),
    Semver(Order, semver::Version),
    Date(Order, DateTime<Utc>),
}

/// A JSON pointer being built while walking the definition.
pub(super) struct Path(String);

impl Path {
    pub(super) fn at(&self, token: &str) -> Path {
        let mut pointer = self.0.clone();
        push_token(&mut pointer, token);
        Path(pointer)
    }

    pub(super) fn index(&self, index: usize) -> Path {
        self.at(&index.to_string())
    }

    pub(super) fn invalid(&self, message: impl Into<String>) -> Error {
        Error::invalid(self.0.clone(), message)
    }
}

/// Checks `definition` (of flag `key`) and compiles it. Prerequisites are checked for shape
/// here; that the flags they name exist is the service's check.
pub fn compile(key: &FlagKey, definition: &FlagDefinition) -> Result<CompiledFlag> {
    let root = Path(String::new());
    if let Some(description) = &definition.description
        && description.len() > MAX_DESCRIPTION
    {
        return Err(root
            .at("description")
            .invalid(format!("at most {MAX_DESCRIPTION} bytes")));
    }
    check_variants(definition, &root)?;
    check_regex_budget(definition, &root)?;
    let variants = Variants(definition);
    variants.check(&definition.default_variant, &root.at("defaultVariant"))?;
    check_services(&definition.services, &root.at("services"))?;
    if definition.environments.len() > MAX_ENVIRONMENTS {
        return Err(root
            .at("environments")
            .invalid(format!("at most {MAX_ENVIRONMENTS} environments")));
    }
    let fallback = compile_targeting(
        key,
        &variants,
        &EnvironmentTargeting {
            enabled: definition.enabled,
            default_variant: None,
            rollout: definition.rollout.clone(),
            rules: definition.rules.clone(),
        },
        &root,
    )?;
    let mut environments = HashMap::new();
    for (name, targeting) in &definition.environments {
        let path = root.at("environments").at(name);
        Environment::parse_field(name, &path.0)?;
        environments.insert(
            name.clone(),
            compile_targeting(key, &variants, targeting, &path)?,
        );
    }
    Ok(CompiledFlag {
        flag_type: definition.flag_type,
        fallback,
        environments,
    })
}

/// The variant names of the definition being compiled.
struct Variants<'a>(&'a FlagDefinition);

impl Variants<'_> {
    fn check(&self, name: &str, path: &Path) -> Result<()> {
        if self.0.variants.contains_key(name) {
            Ok(())
        } else {
            Err(path.invalid(format!("no variant named '{name}'")))
        }
    }
}

fn check_name(name: &str, path: &Path, what: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_NAME
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    if valid {
        Ok(())
    } else {
        Err(path.invalid(format!(
            "{what} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,{}}}",
            MAX_NAME - 1
        )))
    }
}

fn check_variants(definition: &FlagDefinition, root: &Path) -> Result<()> {
    let path = root.at("variants");
    if definition.variants.is_empty() || definition.variants.len() > MAX_VARIANTS {
        return Err(path.invalid(format!("between 1 and {MAX_VARIANTS} variants")));
    }
    for (name, value) in &definition.variants {
        let at = path.at(name);
        check_name(name, &at, "variant name")?;
        if !definition.flag_type.admits(value) {
            return Err(at.invalid(format!(
                "a {} flag's variants must be {} values",
                definition.flag_type.as_str(),
                definition.flag_type.as_str()
            )));
        }
        check_numbers(value, &mut at.0.clone())?;
    }
    Ok(())
}

fn check_regex_budget(definition: &FlagDefinition, root: &Path) -> Result<()> {
    let patterns = definition
        .rules
        .iter()
        .chain(
            definition
                .environments
                .values()
                .flat_map(|t| t.rules.iter()),
        )
        .flat_map(|rule| rule.conditions.iter())
        .filter(|c| c.operator == Operator::Regex)
        .map(|c| c.value.as_str().map_or(0, str::len));
    let (count, bytes) = patterns.fold((0, 0), |(n, b), len| (n + 1, b + len));
    if count > MAX_REGEXES || bytes > MAX_REGEX_BYTES {
        return Err(root.invalid(format!(
            "at most {MAX_REGEXES} regex conditions of {MAX_REGEX_BYTES} bytes together per flag"
        )));
    }
    Ok(())
}

fn check_services(services: &[String], path: &Path) -> Result<()> {
    if services.len() > MAX_SERVICES {
        return Err(path.invalid(format!("at most {MAX_SERVICES} services")));
    }
    for (index, service) in services.iter().enumerate() {
        check_name(service, &path.index(index), "service name")?;
    }
    Ok(())
}

fn compile_targeting(
    key: &FlagKey,
    variants: &Variants<'_>,
    targeting: &EnvironmentTargeting,
    path: &Path,
) -> Result<Targeting> {
    let default_variant = match &targeting.default_variant {
        Some(name) => {
            variants.check(name, &path.at("defaultVariant"))?;
            name.clone()
        }
        None => variants.0.default_variant.clone(),
    };
    let rollout = match &targeting.rollout {
        Some(Rollout {
            variant,
            percentage,
        }) => {
            let at = path.at("rollout");
            variants.check(variant, &at.at("variant"))?;
            let share = BasisPoints::from_percent(*percentage, &at.at("percentage").0)?;
            Some((
                variant.clone(),
                share,
                flag_namespace(key.as_str(), "default"),
            ))
        }
        None => None,
    };
    if targeting.rules.len() > MAX_RULES {
        return Err(path
            .at("rules")
            .invalid(format!("at most {MAX_RULES} rules")));
    }
    let mut ids = HashSet::new();
    let mut rules = Vec::with_capacity(targeting.rules.len());
    for (index, rule) in targeting.rules.iter().enumerate() {
        let at = path.at("rules").index(index);
        if rule.id == "default" {
            return Err(at
                .at("id")
                .invalid("'default' names the environment's rollout; choose another rule id"));
        }
        check_name(&rule.id, &at.at("id"), "rule id")?;
        if !ids.insert(rule.id.as_str()) {
            return Err(at
                .at("id")
                .invalid(format!("rule id '{}' is used twice", rule.id)));
        }
        rules.push(compile_rule(key, variants, rule, &at)?);
    }
    Ok(Targeting {
        enabled: targeting.enabled,
        default_variant,
        rollout,
        rules,
    })
}

fn compile_rule(
    key: &FlagKey,
    variants: &Variants<'_>,
    rule: &Rule,
    path: &Path,
) -> Result<CompiledRule> {
    if rule.conditions.len() > MAX_CONDITIONS {
        return Err(path
            .at("conditions")
            .invalid(format!("at most {MAX_CONDITIONS} conditions")));
    }
    let conditions = rule
        .conditions
        .iter()
        .enumerate()
        .map(|(index, condition)| compile_condition(condition, &path.at("conditions").index(index)))
        .collect::<Result<Vec<_>>>()?;
    if rule.target_keys.len() > MAX_LIST {
        return Err(path
            .at("targetKeys")
            .invalid(format!("at most {MAX_LIST} target keys")));
    }
    if rule.prerequisites.len() > MAX_PREREQUISITES {
        return Err(path
            .at("prerequisites")
            .invalid(format!("at most {MAX_PREREQUISITES} prerequisites")));
    }
    for (index, prerequisite) in rule.prerequisites.iter().enumerate() {
        let at = path.at("prerequisites").index(index);
        let flag = FlagKey::parse_field(&prerequisite.flag_key, &at.at("flagKey").0)?;
        if &flag == key {
            return Err(at
                .at("flagKey")
                .invalid("a flag cannot be its own prerequisite"));
        }
        if prerequisite.variants.is_empty() {
            return Err(at.at("variants").invalid("name at least one variant"));
        }
    }
    let serve = match (&rule.variant, rule.split.as_slice(), rule.percentage) {
        (Some(variant), [], None) => {
            variants.check(variant, &path.at("variant"))?;
            Serve::Variant(variant.clone())
        }
        (Some(variant), [], Some(percentage)) => {
            variants.check(variant, &path.at("variant"))?;
            let share = BasisPoints::from_percent(percentage, &path.at("percentage").0)?;
            Serve::Percentage(variant.clone(), share)
        }
        (None, [_, ..], None) => compile_split(variants, &rule.split, &path.at("split"))?,
        (None, [_, ..], Some(_)) => {
            return Err(path.at("percentage").invalid(
                "percentage applies to a single variant; a split already divides the keys",
            ));
        }
        _ => {
            return Err(path.invalid("a rule serves either 'variant' or a non-empty 'split'"));
        }
    };
    Ok(CompiledRule {
        namespace: flag_namespace(key.as_str(), &rule.id),
        conditions,
        target_keys: rule.target_keys.iter().cloned().collect(),
        prerequisites: rule.prerequisites.clone(),
        serve,
    })
}

fn compile_split(
    variants: &Variants<'_>,
    split: &[super::model::SplitShare],
    path: &Path,
) -> Result<Serve> {
    if split.len() > MAX_SPLIT {
        return Err(path.invalid(format!("at most {MAX_SPLIT} shares")));
    }
    let mut names = Vec::with_capacity(split.len());
    let mut weights = Vec::with_capacity(split.len());
    for (index, share) in split.iter().enumerate() {
        let at = path.index(index);
        variants.check(&share.variant, &at.at("variant"))?;
        if share.weight == 0 || share.weight > 1_000_000 {
            return Err(at
                .at("weight")
                .invalid("weight must be between 1 and 1000000"));
        }
        names.push(share.variant.clone());
        weights.push(share.weight);
    }
    Ok(Serve::Split {
        variants: names,
        weights,
    })
}

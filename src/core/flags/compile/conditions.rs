//! Conditions of targeting rules: each operator's value checked and prepared (regexes, semantic
//! versions, dates, sets) once per version.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    CompiledCondition, MAX_LIST, MAX_NAME, MAX_TEXT, Order, Path, REGEX_DFA_LIMIT,
    REGEX_SIZE_LIMIT, Test,
};
use crate::core::error::Result;
use crate::core::flags::model::{Condition, Operator};

pub(super) fn compile_condition(condition: &Condition, path: &Path) -> Result<CompiledCondition> {
    let attribute = &condition.attribute;
    if attribute.is_empty() || attribute.len() > MAX_NAME * 4 {
        return Err(path
            .at("attribute")
            .invalid("attribute must be 1 to 256 bytes"));
    }
    let value_path = path.at("value");
    let value = &condition.value;
    let text = || -> Result<String> {
        match value {
            Value::String(s) if s.len() <= MAX_TEXT => Ok(s.clone()),
            Value::String(_) => Err(value_path.invalid(format!("at most {MAX_TEXT} bytes"))),
            _ => Err(value_path.invalid(format!(
                "operator '{}' takes a string",
                operator_name(condition.operator)
            ))),
        }
    };
    let scalar = || -> Result<Value> {
        match value {
            Value::String(s) if s.len() > MAX_TEXT => {
                Err(value_path.invalid(format!("at most {MAX_TEXT} bytes")))
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
            _ => Err(value_path.invalid("compare with a string, number or boolean")),
        }
    };
    let list = || -> Result<Vec<Value>> {
        let Value::Array(items) = value else {
            return Err(value_path.invalid("'in' and 'not_in' take an array"));
        };
        if items.len() > MAX_LIST {
            return Err(value_path.invalid(format!("at most {MAX_LIST} values")));
        }
        for (index, item) in items.iter().enumerate() {
            if !matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(value_path
                    .index(index)
                    .invalid("list items are strings, numbers or booleans"));
            }
        }
        Ok(items.clone())
    };
    let number = || -> Result<f64> {
        value
            .as_f64()
            .ok_or_else(|| value_path.invalid("numeric comparisons take a number"))
    };
    let version = || -> Result<semver::Version> {
        parse_semver(&text()?)
            .ok_or_else(|| value_path.invalid("not a semantic version (e.g. 1.4.0)"))
    };
    let date = || -> Result<DateTime<Utc>> {
        parse_date(value).ok_or_else(|| {
            value_path.invalid("dates are RFC 3339 strings or Unix timestamps in seconds")
        })
    };
    let test = match condition.operator {
        Operator::Eq => Test::Equals(scalar()?),
        Operator::Neq => Test::NotEquals(scalar()?),
        Operator::In => Test::OneOf(list()?),
        Operator::NotIn => Test::NoneOf(list()?),
        Operator::Contains => Test::Contains(text()?),
        Operator::StartsWith => Test::StartsWith(text()?),
        Operator::EndsWith => Test::EndsWith(text()?),
        Operator::Regex => Test::Matches(
            regex::RegexBuilder::new(&text()?)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_LIMIT)
                .build()
                .map_err(|e| value_path.invalid(format!("invalid regular expression: {e}")))?,
        ),
        Operator::Gt => Test::Number(Order::Greater, number()?),
        Operator::Gte => Test::Number(Order::GreaterOrEqual, number()?),
        Operator::Lt => Test::Number(Order::Less, number()?),
        Operator::Lte => Test::Number(Order::LessOrEqual, number()?),
        Operator::SemverEq => Test::Semver(Order::Equal, version()?),
        Operator::SemverGt => Test::Semver(Order::Greater, version()?),
        Operator::SemverLt => Test::Semver(Order::Less, version()?),
        Operator::Before => Test::Date(Order::Less, date()?),
        Operator::After => Test::Date(Order::Greater, date()?),
    };
    Ok(CompiledCondition {
        attribute: attribute.clone(),
        test,
    })
}

fn operator_name(operator: Operator) -> String {
    serde_json::to_value(operator)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `1.2.3` or `v1.2.3`.
pub fn parse_semver(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// An RFC 3339 string or a Unix timestamp in seconds.
pub fn parse_date(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            if !seconds.is_finite() || seconds.abs() > 1e13 {
                return None;
            }
            DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        }
        _ => None,
    }
}

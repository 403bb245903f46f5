//! Validated identifiers: config ids, flag keys and environment names.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// `TryFrom<String>` (through the type's `parse`), `From<Id> for String` and `Display`: what
/// every validated id has alike.
macro_rules! string_id {
    ($($id:ident),* $(,)?) => {$(
        impl TryFrom<String> for $id {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                $id::parse(&value)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

string_id!(
    ConfigId,
    Environment,
    SecretName,
    FlagKey,
    ServiceName,
    InstanceId,
    StrategyName
);

/// `[a-z0-9][a-z0-9._-]{0,127}`
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigId(String);

/// `[a-z0-9][a-z0-9_-]{0,63}`
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Environment(String);

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`: a secret in the built-in store (`db-password`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(value: &str) -> Result<Self> {
        FlagKey::parse_field(value, "name")
            .map(|key| SecretName(key.0))
            .map_err(|_| {
                Error::invalid(
                    "name",
                    "secret name must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}",
                )
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`: flag keys keep the case clients use (`newCheckout`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct FlagKey(String);

impl FlagKey {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_field(value, "flagKey")
    }

    /// Parses, naming `field` (a JSON pointer or parameter) in the error.
    pub fn parse_field(value: &str, field: &str) -> Result<Self> {
        if check_any_case(value, 128, b"._-") {
            Ok(FlagKey(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "flag key must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Same order as `String`'s, so maps keyed by `FlagKey` can be searched with a `&str`.
impl std::borrow::Borrow<str> for FlagKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// `value` starts with a letter or digit, of either case, and has at most `max_len` of those or
/// `extra`.
fn check_any_case(value: &str, max_len: usize, extra: &[u8]) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(b))
}

fn check(value: &str, max_len: usize, extra: &[u8]) -> bool {
    let bytes = value.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(b);
    !bytes.is_empty()
        && bytes.len() <= max_len
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(allowed)
}

impl ConfigId {
    pub fn parse(value: &str) -> Result<Self> {
        if check(value, 128, b"._-") {
            Ok(ConfigId(value.to_owned()))
        } else {
            Err(Error::invalid(
                "configId",
                "config id must match [a-z0-9][a-z0-9._-]{0,127}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Environment {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_field(value, "environment")
    }

    /// Parses, naming `field` (a JSON pointer or parameter) in the error.
    pub fn parse_field(value: &str, field: &str) -> Result<Self> {
        if check(value, 64, b"_-") {
            Ok(Environment(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "environment name must match [a-z0-9][a-z0-9_-]{0,63}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_ids_follow_the_documented_pattern() {
        for ok in ["a", "0", "payments.api", "a-b_c.d", &"x".repeat(128)] {
            assert!(ConfigId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-a", ".a", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(ConfigId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flag_keys_follow_the_documented_pattern() {
        for ok in ["a", "newCheckout", "dark-mode.v2", &"K".repeat(128)] {
            assert!(FlagKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a/b", "a b", "a:b", &"k".repeat(129)] {
            assert!(FlagKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_names_follow_the_documented_pattern() {
        assert!(Environment::parse("production").is_ok());
        assert!(Environment::parse("eu_west-1").is_ok());
        assert!(Environment::parse("prod.eu").is_err());
        assert!(Environment::parse(&"e".repeat(65)).is_err());
    }
}

/// The environments a change touches: every one (a change to the base config, a create, a
/// delete, a schema, a flag-wide field) or the named ones. The audit record and the change
/// request keep it as a list, where every environment is written `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    Every,
    Only(Vec<String>),
}

impl Touched {
    /// How "every environment" is written in lists (audit records, change requests).
    pub const EVERY: &'static str = "*";

    /// The list form: `["*"]`, or the names.
    pub fn as_list(&self) -> Vec<String> {
        match self {
            Touched::Every => vec![Touched::EVERY.to_owned()],
            Touched::Only(names) => names.clone(),
        }
    }

    pub fn includes(&self, environment: &str) -> bool {
        match self {
            Touched::Every => true,
            Touched::Only(names) => names.iter().any(|name| name == environment),
        }
    }

    /// What lies outside `allowed`, in list form (`*` when every environment is touched).
    pub fn outside(&self, allowed: &[String]) -> Vec<String> {
        match self {
            Touched::Every => vec![Touched::EVERY.to_owned()],
            Touched::Only(names) => names
                .iter()
                .filter(|name| !allowed.contains(name))
                .cloned()
                .collect(),
        }
    }
}

/// `[a-z0-9][a-z0-9._-]{0,127}`: a service of the registry (`payments`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_field(value, "serviceName")
    }

    /// Parses, naming `field` (a JSON pointer or parameter) in the error.
    pub fn parse_field(value: &str, field: &str) -> Result<Self> {
        if check(value, 128, b"._-") {
            Ok(ServiceName(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "service name must match [a-z0-9][a-z0-9._-]{0,127}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`: one registered instance of a service (`pod-7f9c:8080`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_field(value, "instanceId")
    }

    /// Parses, naming `field` (a JSON pointer or parameter) in the error.
    pub fn parse_field(value: &str, field: &str) -> Result<Self> {
        if check_any_case(value, 128, b"._:-") {
            Ok(InstanceId(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "instance id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9][a-z0-9._-]{0,63}`: a deployment strategy (`canary`, `payments-slow`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct StrategyName(String);

impl StrategyName {
    pub fn parse(value: &str) -> Result<Self> {
        Self::parse_field(value, "name")
    }

    /// Parses, naming `field` (a JSON pointer or parameter) in the error.
    pub fn parse_field(value: &str, field: &str) -> Result<Self> {
        if check(value, 64, b"._-") {
            Ok(StrategyName(value.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "strategy name must match [a-z0-9][a-z0-9._-]{0,63}",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

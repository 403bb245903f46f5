//! Rotation policies: how often a secret gets a new value, how long the value it replaces stays
//! served, and where the new value comes from (generated here, or supplied by an operator).

use base64::Engine;
use rand::seq::IndexedRandom;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::ValueFormat;
use crate::core::error::{Error, Result};

/// Longest interval or grace period: ten years.
const MAX_SECS: u64 = 10 * 366 * 24 * 3600;
/// Bounds of a generated value's length (characters or bytes).
const MIN_LENGTH: u16 = 8;
const MAX_LENGTH: u16 = 4096;
const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `{intervalSecs, gracePeriodSecs, generator}`, kept with every version of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationPolicy {
    /// A new version is due this long after the current one was made.
    pub interval_secs: u64,
    /// How long the version a rotation replaces stays served as `previous`.
    pub grace_period_secs: u64,
    pub generator: Generator,
}

/// Where a rotation's new value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Generator {
    /// A random string of `length` characters drawn from `alphabet` (default A-Z a-z 0-9).
    #[serde(rename_all = "camelCase")]
    String {
        length: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alphabet: Option<String>,
        /// For a secret whose value is an object: the field that gets the new value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// `length` random bytes, as base64 or hex text.
    #[serde(rename_all = "camelCase")]
    Bytes {
        length: u16,
        encoding: Encoding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// No value is made here: a due rotation waits for `POST /api/v1/secrets/{name}/rotate`
    /// with the new value.
    Supplied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Base64,
    Hex,
}

impl RotationPolicy {
    /// Refuses a policy that could not work on a secret of `format`, naming the field under
    /// `pointer` (for example `/rotation`).
    pub fn check(&self, format: ValueFormat, pointer: &str) -> Result<()> {
        if self.interval_secs == 0 || self.interval_secs > MAX_SECS {
            return Err(Error::invalid(
                format!("{pointer}/intervalSecs"),
                format!("an interval is 1 to {MAX_SECS} seconds"),
            ));
        }
        if self.grace_period_secs > MAX_SECS {
            return Err(Error::invalid(
                format!("{pointer}/gracePeriodSecs"),
                format!("a grace period is 0 to {MAX_SECS} seconds"),
            ));
        }
        let generator = format!("{pointer}/generator");
        let (length, field) = match &self.generator {
            Generator::Supplied => return Ok(()),
            Generator::String {
                length,
                alphabet,
                field,
            } => {
                if let Some(alphabet) = alphabet {
                    let mut chars: Vec<char> = alphabet.chars().collect();
                    chars.sort_unstable();
                    chars.dedup();
                    let printable = chars.iter().all(|c| c.is_ascii_graphic());
                    if chars.len() < 2 || chars.len() != alphabet.chars().count() || !printable {
                        return Err(Error::invalid(
                            format!("{generator}/alphabet"),
                            "an alphabet is at least two distinct printable ASCII characters",
                        ));
                    }
                }
                (*length, field)
            }
            Generator::Bytes { length, field, .. } => (*length, field),
        };
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(Error::invalid(
                format!("{generator}/length"),
                format!("a generated value is {MIN_LENGTH} to {MAX_LENGTH} long"),
            ));
        }
        match (format, field) {
            (ValueFormat::Object, None) => Err(Error::invalid(
                format!("{generator}/field"),
                "the secret's value is an object: name the field a rotation replaces",
            )),
            (ValueFormat::String, Some(_)) => Err(Error::invalid(
                format!("{generator}/field"),
                "the secret's value is a string: a field needs an object value",
            )),
            (_, Some(field)) if field.is_empty() => Err(Error::invalid(
                format!("{generator}/field"),
                "a field name is not empty",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses an object value that a rotation would push past `max_bytes`: with the field
    /// this policy replaces at the longest value it can generate, the value must still fit
    /// (else every due rotation would fail).
    pub fn check_room(&self, value: &Value, max_bytes: usize) -> Result<()> {
        let (Some(field), Value::Object(map)) = (self.replaced_field(), value) else {
            return Ok(());
        };
        let longest = self.longest_material();
        let mut rotated = map.clone();
        rotated.insert(field.to_owned(), Value::String("x".repeat(longest)));
        let size = serde_json::to_vec(&rotated).map_err(Error::internal)?.len();
        if size > max_bytes {
            return Err(Error::invalid(
                "/value",
                format!(
                    "with the rotation's generated \"{field}\" at its longest ({longest} bytes) \
                     the value would be {size} bytes, over the {max_bytes}-byte limit"
                ),
            ));
        }
        Ok(())
    }

    /// The field of an object value that generated material replaces.
    fn replaced_field(&self) -> Option<&str> {
        match &self.generator {
            Generator::String { field, .. } | Generator::Bytes { field, .. } => field.as_deref(),
            Generator::Supplied => None,
        }
    }

    /// The most bytes generated material takes in a JSON value: a string's characters may
    /// each need an escape (`"`, `\`); bytes are encoded.
    fn longest_material(&self) -> usize {
        match &self.generator {
            Generator::String { length, .. } => 2 * usize::from(*length),
            Generator::Bytes {
                length,
                encoding: Encoding::Base64,
                ..
            } => usize::from(*length).div_ceil(3) * 4,
            Generator::Bytes {
                length,
                encoding: Encoding::Hex,
                ..
            } => 2 * usize::from(*length),
            Generator::Supplied => 0,
        }
    }

    /// Whether rotations make their own value (otherwise they wait for one).
    pub fn generates(&self) -> bool {
        !matches!(self.generator, Generator::Supplied)
    }

    /// The next value: the generated material, placed in `field` of the current object value
    /// when the generator names one. `current` is the current value as written.
    pub fn generate(&self, current: &Value) -> Result<Value> {
        let (material, field) = match &self.generator {
            Generator::Supplied => {
                return Err(Error::invalid(
                    "/value",
                    "this secret's rotation waits for a supplied value",
                ));
            }
            Generator::String {
                length,
                alphabet,
                field,
            } => {
                let alphabet: Vec<char> = alphabet
                    .as_deref()
                    .unwrap_or(ALPHANUMERIC)
                    .chars()
                    .collect();
                // ThreadRng is a CSPRNG seeded from the operating system.
                let mut rng = rand::rng();
                let text: String = (0..*length)
                    .map(|_| *alphabet.choose(&mut rng).expect("alphabet is not empty"))
                    .collect();
                (text, field)
            }
            Generator::Bytes {
                length,
                encoding,
                field,
            } => {
                let mut bytes = vec![0u8; usize::from(*length)];
                ring::rand::SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| Error::internal("the system random source failed"))?;
                let text = match encoding {
                    Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
                    Encoding::Hex => hex::encode(&bytes),
                };
                (text, field)
            }
        };
        match (field, current) {
            (None, _) => Ok(Value::String(material)),
            (Some(field), Value::Object(map)) => {
                let mut map = map.clone();
                map.insert(field.clone(), Value::String(material));
                Ok(Value::Object(map))
            }
            (Some(_), _) => Err(Error::invalid(
                "/rotation/generator/field",
                "the secret's value is not an object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_without_room_for_its_longest_rotation_is_refused() {
        let hex =
            policy(json!({"type": "bytes", "length": 4096, "encoding": "hex", "field": "key"}));
        // {"key":"…","pad":"…"}: 19 bytes of punctuation and names, 8,192 of hex, the pad's.
        let limit = 19 + 8192 + 81;
        let fits = json!({"key": "old", "pad": "p".repeat(81)});
        assert!(hex.check_room(&fits, limit).is_ok());
        let over = json!({"key": "old", "pad": "p".repeat(82)});
        let refused = hex.check_room(&over, limit).unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidInput { field, message }
                if field == "/value" && message.contains("8293 bytes")),
            "{refused:?}"
        );
        // The field's current value does not count: it is replaced.
        let long_key = json!({"key": "k".repeat(9000), "pad": "p".repeat(81)});
        assert!(hex.check_room(&long_key, limit).is_ok());
        // A string value, or a policy that waits for a supplied value, has nothing to check.
        let supplied = policy(json!({"type": "supplied"}));
        assert!(supplied.check_room(&over, 10).is_ok());
        let whole = policy(json!({"type": "string", "length": 32}));
        assert!(whole.check_room(&json!("short"), 10).is_ok());
    }

    fn policy(generator: Value) -> RotationPolicy {
        serde_json::from_value(
            json!({"intervalSecs": 60, "gracePeriodSecs": 10, "generator": generator}),
        )
        .unwrap()
    }

    #[test]
    fn generated_strings_use_the_alphabet_and_length() {
        let p = policy(json!({"type": "string", "length": 40, "alphabet": "ab"}));
        p.check(ValueFormat::String, "/rotation").unwrap();
        let Value::String(one) = p.generate(&json!("old")).unwrap() else {
            panic!()
        };
        assert_eq!(one.len(), 40);
        assert!(one.chars().all(|c| c == 'a' || c == 'b'));
        let Value::String(two) = p.generate(&json!("old")).unwrap() else {
            panic!()
        };
        assert_ne!(one, two, "two draws of 40 bits agree with chance 2^-40");
    }

    #[test]
    fn generated_bytes_are_encoded_into_the_named_field() {
        let p =
            policy(json!({"type": "bytes", "length": 16, "encoding": "hex", "field": "password"}));
        p.check(ValueFormat::Object, "/rotation").unwrap();
        let next = p
            .generate(&json!({"user": "app", "password": "old"}))
            .unwrap();
        assert_eq!(next["user"], "app");
        let password = next["password"].as_str().unwrap();
        assert_eq!(password.len(), 32);
        assert!(hex::decode(password).is_ok());
    }

    #[test]
    fn policies_that_cannot_work_are_refused_naming_the_field() {
        for (generator, format, field) in [
            (
                json!({"type": "string", "length": 4}),
                ValueFormat::String,
                "/rotation/generator/length",
            ),
            (
                json!({"type": "string", "length": 16, "alphabet": "aa"}),
                ValueFormat::String,
                "/rotation/generator/alphabet",
            ),
            (
                json!({"type": "string", "length": 16}),
                ValueFormat::Object,
                "/rotation/generator/field",
            ),
            (
                json!({"type": "bytes", "length": 16, "encoding": "hex", "field": "x"}),
                ValueFormat::String,
                "/rotation/generator/field",
            ),
        ] {
            let err = policy(generator).check(format, "/rotation").unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: ref f, .. } if f == field),
                "{err:?}"
            );
        }
        let mut zero = policy(json!({"type": "supplied"}));
        zero.interval_secs = 0;
        assert!(zero.check(ValueFormat::String, "/rotation").is_err());
    }
}

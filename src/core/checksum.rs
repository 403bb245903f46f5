//! Checksums: lowercase hex SHA-256 of the RFC 8785 (JCS) canonical form.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical (JCS) bytes of a JSON value.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: it holds no non-string keys or foreign types.
    if compact_form_is_canonical(value) {
        return serde_json::to_vec(value).expect("a serde_json::Value always serializes");
    }
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalizes")
}

/// The largest integer every JSON reader holds exactly (an IEEE double's 53-bit mantissa).
const EXACT_INTEGER: u64 = 1 << 53;

/// Whether serde_json's compact form of `value` is already its RFC 8785 form, as it is for
/// almost every config: members in ascending order (JCS orders by UTF-16 code units, which
/// agrees with the UTF-8 order of names without characters from U+E000 up), integers a double
/// holds exactly (JCS writes numbers as ECMAScript does; floats are left to the canonicalizer),
/// and strings, which both escape alike (`\"`, `\\`, `\b\f\n\r\t`, other controls as
/// lowercase `\u00xx`, everything else as UTF-8). The canonicalizer buffers and sorts every
/// member again, which costs several times the plain serialization.
fn compact_form_is_canonical(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_i64().map(i64::unsigned_abs))
            .is_some_and(|magnitude| magnitude <= EXACT_INTEGER),
        Value::Array(items) => items.iter().all(compact_form_is_canonical),
        Value::Object(members) => {
            let names_ordered = members
                .keys()
                .zip(members.keys().skip(1))
                .all(|(a, b)| a < b)
                && members
                    .keys()
                    .all(|name| name.chars().all(|c| c < '\u{E000}'));
            names_ordered && members.values().all(compact_form_is_canonical)
        }
    }
}

pub fn checksum_of_bytes(canonical: &[u8]) -> String {
    hex::encode(Sha256::digest(canonical))
}

pub fn checksum(value: &Value) -> String {
    checksum_of_bytes(&canonical_bytes(value))
}

/// A checksum a client sends back (an applied-state report) has this form, or it is refused
/// naming `field`.
pub fn check_reported(text: &str, field: &str) -> crate::core::error::Result<()> {
    let well_formed = text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if well_formed {
        return Ok(());
    }
    Err(crate::core::error::Error::invalid(
        field,
        "checksum must be 64 lowercase hex digits",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checksum_ignores_key_order_and_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": [1, 2, {"y": true, "x": null}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[1,2,{"x":null,"y":true}],"b":1}"#).unwrap();
        assert_eq!(checksum(&a), checksum(&b));
    }

    #[test]
    fn canonical_form_follows_rfc8785() {
        let value = json!({"numbers": [1.0, 1e30, -0.0, 0.000001], "s": "\u{20ac}\n", "a": {}});
        let text = String::from_utf8(canonical_bytes(&value)).unwrap();
        assert_eq!(text, r#"{"a":{},"numbers":[1,1e+30,0,0.000001],"s":"€\n"}"#);
    }

    #[test]
    fn the_compact_shortcut_agrees_with_the_canonicalizer() {
        let big = EXACT_INTEGER;
        // (value, whether the shortcut takes it)
        let cases = [
            (
                json!({"b": 1, "a": [1, -2, {"y": true, "x": null}], "": "empty name"}),
                true,
            ),
            (
                json!({"s": "quote \" backslash \\ controls \u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f} / é € 😀"}),
                true,
            ),
            (json!({"zé": 3, "zZ": 4, "z\u{D7FF}": 5}), true),
            (json!({"z\u{E000}": 1, "z\u{1F600}": 2}), false),
            (json!({"big": big, "small": -(big as i64)}), true),
            (json!({"bigger": big + 1}), false),
            (json!({"smaller": -(big as i64) - 1}), false),
            (json!({"max": u64::MAX, "min": i64::MIN}), false),
            (
                json!({"floats": [1.0, 1e30, -0.0, 0.000001, 1.5, 2e-7]}),
                false,
            ),
            (json!([[], {}, [{}], "x", 0, false]), true),
        ];
        for (case, shortcut) in cases {
            assert_eq!(compact_form_is_canonical(&case), shortcut, "{case}");
            let expected = serde_json_canonicalizer::to_vec(&case).unwrap();
            assert_eq!(
                String::from_utf8(canonical_bytes(&case)).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{case}"
            );
        }
    }

    #[test]
    fn checksum_is_lowercase_hex_sha256_of_canonical_bytes() {
        // sha256("{}") computed independently.
        assert_eq!(
            checksum(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}

//! Checksums: lowercase hex SHA-256 of the RFC 8785 (JCS) canonical form.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical (JCS) bytes of a JSON value.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: it holds no non-string keys or foreign types.
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalizes")
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
    fn checksum_is_lowercase_hex_sha256_of_canonical_bytes() {
        // sha256("{}") computed independently.
        assert_eq!(
            checksum(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}

//! Checksums: lowercase hex SHA-256 of the RFC 8785 (JCS) canonical form.

use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::Formatter;
use sha2::{Digest, Sha256};

/// The canonical (JCS) bytes of a JSON value.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: it holds no non-string keys or foreign types.
    if names_in_canonical_order(value) {
        let mut bytes = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, JcsNumbers);
        value
            .serialize(&mut serializer)
            .expect("a serde_json::Value always serializes");
        return bytes;
    }
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalizes")
}

/// Whether every object's member names in `value` are already in RFC 8785's order, as they are
/// in almost every config: a `Value`'s members are in the UTF-8 order of their names, which
/// agrees with JCS's order (UTF-16 code units) for names without characters from U+E000 up.
/// Then the compact form with JCS's numbers is the canonical form, and the canonicalizer, which
/// buffers and sorts every member again at several times the cost, is not needed.
fn names_in_canonical_order(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(names_in_canonical_order),
        Value::Object(members) => {
            members
                .keys()
                .zip(members.keys().skip(1))
                .all(|(a, b)| a < b)
                && members
                    .keys()
                    .all(|name| name.chars().all(|c| c < '\u{E000}'))
                && members.values().all(names_in_canonical_order)
        }
        _ => true,
    }
}

/// serde_json's compact form with numbers as RFC 8785 writes them: every number as the double
/// it is, in ECMAScript's shortest form (`ryu-js`, which the canonicalizer uses too). Strings
/// are escaped alike already (`\"`, `\\`, `\b\f\n\r\t`, other controls as lowercase
/// `\u00xx`, everything else as UTF-8).
struct JcsNumbers;

impl JcsNumbers {
    fn write_number<W: ?Sized + io::Write>(writer: &mut W, number: f64) -> io::Result<()> {
        if !number.is_finite() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "JSON has no NaN or infinities",
            ));
        }
        writer.write_all(ryu_js::Buffer::new().format_finite(number).as_bytes())
    }
}

/// Every integer is written as the double JCS reads it as (`as f64` rounds as JCS does).
macro_rules! jcs_numbers {
    ($($method:ident: $type:ty),*) => {
        $(fn $method<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: $type) -> io::Result<()> {
            JcsNumbers::write_number(writer, value as f64)
        })*
    };
}

impl Formatter for JcsNumbers {
    jcs_numbers!(
        write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128,
        write_f32: f32, write_f64: f64
    );

    fn write_number_str<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        value: &str,
    ) -> io::Result<()> {
        let number = value
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a number"))?;
        JcsNumbers::write_number(writer, number)
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
        let big: u64 = 1 << 53;
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
            (
                json!({"big": big, "bigger": big + 1, "small": -(big as i64) - 1}),
                true,
            ),
            (json!({"max": u64::MAX, "min": i64::MIN}), true),
            (
                json!({"floats": [1.0, 10.0, 1e21, 1e30, -0.0, 0.000001, 1e-7, 1.5, 2e-7, 123.456]}),
                true,
            ),
            (json!([[], {}, [{}], "x", 0, false]), true),
        ];
        for (case, shortcut) in cases {
            assert_eq!(names_in_canonical_order(&case), shortcut, "{case}");
            let expected = serde_json_canonicalizer::to_vec(&case).unwrap();
            assert_eq!(
                String::from_utf8(canonical_bytes(&case)).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{case}"
            );
        }
        assert!(!names_in_canonical_order(&json!({"a": [{"\u{E000}": 1}]})));
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

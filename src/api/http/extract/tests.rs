//! Unit tests of the parent module.

use super::*;

#[test]
fn depth_counts_brackets_outside_strings_only() {
    let deep = "[".repeat(65) + &"]".repeat(65);
    assert!(json_depth_exceeds(deep.as_bytes(), 64));
    let shallow = "[".repeat(64) + &"]".repeat(64);
    assert!(!json_depth_exceeds(shallow.as_bytes(), 64));
    let in_string = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(100));
    assert!(!json_depth_exceeds(in_string.as_bytes(), 64));
}

fn duplicate_at(json: &str) -> Option<String> {
    duplicate_member(json.as_bytes()).map(|duplicate| duplicate.pointer)
}

#[test]
fn duplicate_members_are_found_at_any_depth_with_their_pointer() {
    assert_eq!(duplicate_at(r#"{"a": 1, "a": 2}"#).as_deref(), Some("/a"));
    assert_eq!(
        duplicate_at(r#"{"c": {"x": {"b": 1, "b": 2}}}"#).as_deref(),
        Some("/c/x/b")
    );
    assert_eq!(
        duplicate_at(r#"{"l": [0, {"k": 1}, {"k": 1, "k": 2}]}"#).as_deref(),
        Some("/l/2/k")
    );
    assert_eq!(
        duplicate_at(r#"[{"a/b": {"~": 1, "~": 2}}]"#).as_deref(),
        Some("/0/a~1b/~0")
    );
    // Names are compared after unescaping.
    assert_eq!(
        duplicate_at(r#"{"a": 1, "\u0061": 2}"#).as_deref(),
        Some("/a")
    );
    let duplicate = duplicate_member(br#"{"x": {"y\n": 1, "y\n": 2}}"#).unwrap();
    assert_eq!(duplicate.name, "y\n");
}

#[test]
fn names_repeated_in_different_objects_are_not_duplicates() {
    assert_eq!(duplicate_at(r#"{"a": {"b": 1}, "b": 2}"#), None);
    assert_eq!(
        duplicate_at(r#"{"a": {"x": 1}, "b": {"x": 1}, "x": 1}"#),
        None
    );
    assert_eq!(duplicate_at(r#"[{"a": 1}, {"a": 1}]"#), None);
    assert_eq!(duplicate_at(r#""a""#), None);
}

#[test]
fn objects_past_the_scan_limit_are_checked_with_a_set() {
    let members: Vec<String> = (0..200)
        .map(|n| format!(r#""k{n}": {{"k{n}": {n}}}"#))
        .collect();
    let unique = format!("{{{}}}", members.join(","));
    assert_eq!(duplicate_at(&unique), None);
    let repeated = format!(r#"{{{}, "k3": 0, "k199": 1}}"#, members.join(","));
    assert_eq!(duplicate_at(&repeated).as_deref(), Some("/k3"));
    let nested = format!(r#"{{"a": {{{}, "k150": 0}}}}"#, members.join(","));
    assert_eq!(duplicate_at(&nested).as_deref(), Some("/a/k150"));
}

#[test]
fn malformed_json_is_left_to_the_typed_parse() {
    assert_eq!(duplicate_at(r#"{"a": 1, "a""#), None);
    assert_eq!(duplicate_at("not json"), None);
    let error = parse_json::<serde_json::Value>(br#"{"a": 1, "a""#).unwrap_err();
    assert!(error.to_string().contains("malformed JSON"), "{error}");
}

#[test]
fn parse_json_refuses_a_duplicate_naming_its_pointer() {
    let error = parse_json::<serde_json::Value>(br#"{"config": {"a": 1, "a": 2}}"#).unwrap_err();
    match error {
        Error::InvalidInput { field, message } => {
            assert_eq!(field, "/config/a");
            assert!(message.contains("duplicate member name \"a\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// A body type that refuses duplicates as it is read, for `parse_json_once`.
#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    key: String,
    #[serde(default)]
    context: Option<UniqueValue>,
}

impl RefusesDuplicates for Strict {}

#[test]
fn one_pass_parsing_accepts_and_refuses_what_two_passes_do() {
    let bodies = [
        r#"{"key": "k", "context": {"a": 1, "b": [1, 2.5, {"c": null}], "d": "\u0061"}}"#,
        r#"{"key": "k"}"#,
        r#"{"key": "k", "key": "l"}"#,
        r#"{"key": "k", "context": {"a": 1, "a": 2}}"#,
        r#"{"key": "k", "context": {"x": {"b": 1, "\u0062": 2}}}"#,
        r#"{"key": "k", "context": {"l": [{"k": 1}, {"k": 1, "k": 2}]}}"#,
        r#"{"key": "k", "other": 1, "other": 2}"#,
        r#"{"key": "k", "context": {"a": 1}"#,
        r#"{"key": 1}"#,
        "  ",
        "",
    ];
    for body in bodies {
        let once = parse_json_once::<Strict>(body.as_bytes()).map_err(|e| format!("{e:?}"));
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Plain {
            key: String,
            #[serde(default)]
            context: Option<serde_json::Value>,
        }
        let twice = parse_json::<Plain>(body.as_bytes()).map_err(|e| format!("{e:?}"));
        match (&once, &twice) {
            (Ok(once), Ok(twice)) => {
                assert_eq!(once.key, twice.key, "{body}");
                assert_eq!(
                    once.context.as_ref().map(|c| &c.0),
                    twice.context.as_ref(),
                    "{body}"
                );
            }
            _ => assert_eq!(once.as_ref().err(), twice.as_ref().err(), "{body}"),
        }
        let value_once = parse_json_once::<UniqueValue>(body.as_bytes()).map(|v| v.0);
        let value_twice = parse_json::<serde_json::Value>(body.as_bytes());
        assert_eq!(
            value_once.map_err(|e| format!("{e:?}")),
            value_twice.map_err(|e| format!("{e:?}")),
            "{body}"
        );
    }
    let deep = format!(
        "{{\"key\": \"k\", \"context\": {}1{}}}",
        "[".repeat(70),
        "]".repeat(70)
    );
    assert_eq!(
        parse_json_once::<Strict>(deep.as_bytes())
            .map_err(|e| format!("{e:?}"))
            .err(),
        parse_json::<Strict>(deep.as_bytes())
            .map_err(|e| format!("{e:?}"))
            .err()
    );
    assert!(
        parse_json_once::<Strict>(br#"{"key": "k", "context": {"a": 1, "a": 2}}"#)
            .unwrap_err()
            .to_string()
            .contains("duplicate member name")
    );
}

#[test]
fn json_media_types_are_application_json_and_the_json_suffix() {
    for json in [
        "application/json",
        "Application/JSON",
        "application/merge-patch+json",
        "application/vnd.summit-config+JSON",
    ] {
        assert!(is_json_media_type(json), "{json}");
    }
    for other in [
        "text/plain",
        "text/json",
        "application/jsonx",
        "application/+json",
        "application/x-www-form-urlencoded",
        "json",
        "",
    ] {
        assert!(!is_json_media_type(other), "{other}");
    }
}

#[test]
fn the_declared_media_type_drops_its_parameters() {
    let mut headers = HeaderMap::new();
    assert_eq!(declared_media_type(&headers), None);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json ; charset=utf-8"),
    );
    assert_eq!(
        declared_media_type(&headers).as_deref(),
        Some("application/json")
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
    );
    let declared = declared_media_type(&headers).unwrap();
    assert!(!is_json_media_type(&declared), "{declared}");
}

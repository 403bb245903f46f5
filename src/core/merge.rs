//! RFC 7396 JSON Merge Patch and RFC 6902 diffs, via the json-patch crate.

use serde_json::Value;

/// `base` with `patch` applied as an RFC 7396 merge patch.
pub fn merged(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// The RFC 6902 operations that turn `from` into `to`.
pub fn diff(from: &Value, to: &Value) -> Value {
    serde_json::to_value(json_patch::diff(from, to)).expect("a JSON patch always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_removes_nulls_and_replaces_arrays() {
        let base = json!({"db": {"host": "a", "pool": 5}, "tags": [1, 2], "debug": true});
        let patch = json!({"db": {"pool": 20}, "tags": [3], "debug": null, "new": "x"});
        assert_eq!(
            merged(&base, &patch),
            json!({"db": {"host": "a", "pool": 20}, "tags": [3], "new": "x"})
        );
    }

    #[test]
    fn merge_patch_with_scalar_replaces_the_whole_value() {
        assert_eq!(merged(&json!({"a": 1}), &json!("x")), json!("x"));
    }

    #[test]
    fn diff_then_patch_round_trips() {
        let from = json!({"a": 1, "b": [1, 2], "c": {"d": "e"}});
        let to = json!({"a": 2, "b": [1], "c": {"f": "g"}});
        let ops: json_patch::Patch = serde_json::from_value(diff(&from, &to)).unwrap();
        let mut doc = from.clone();
        json_patch::patch(&mut doc, &ops).unwrap();
        assert_eq!(doc, to);
    }
}

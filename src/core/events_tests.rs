use super::*;
use serde_json::json;

#[test]
fn a_patch_keeps_what_serde_makes_of_it_through_a_stored_record() {
    let before = json!({"a": 1, "gone": [1, 2], "x/y~z": {"deep": true}, "list": [1, 2, 3]});
    let after = json!({"a": 2, "new": {"k": "v"}, "x/y~z": {"deep": false}, "list": [1]});
    let diff = json_patch::diff(&before, &after);
    assert!(diff.0.len() >= 4, "{diff:?}");
    let every_kind: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/a~1b", "value": {"n": [1, null]}},
        {"op": "remove", "path": "/c"},
        {"op": "replace", "path": "/d/0", "value": "text"},
        {"op": "move", "from": "/e", "path": "/f"},
        {"op": "copy", "from": "/g~0", "path": "/h"},
        {"op": "test", "path": "/i", "value": 1.5},
    ]))
    .unwrap();
    for patch in [diff, every_kind] {
        let expected = serde_json::to_value(&patch).unwrap();
        let made = Patch::of(&patch).unwrap();
        assert_eq!(made.to_value(), expected);
        let details = ChangeDetails {
            changes: Some(made.clone()),
            ..ChangeDetails::default()
        };
        let stored = serde_json::to_string(&details).unwrap();
        let read: ChangeDetails = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.changes.as_ref().map(Patch::text), Some(made.text()));
        assert_eq!(serde_json::to_value(&read).unwrap()["changes"], expected);
    }
}

#[test]
fn a_patch_over_the_limit_is_elided_and_one_under_it_kept() {
    let small = json!({"config": {"a": 1}});
    let next = json!({"config": {"a": 2}});
    let details = ChangeDetails::of_version(Some((1, &small)), &next).unwrap();
    let changes = details.changes.expect("kept");
    assert_eq!(
        changes.to_value(),
        json!([{"op": "replace", "path": "/config/a", "value": 2}])
    );
    assert!(!details.changes_elided);
    let big = json!({"config": {"blob": "x".repeat(MAX_PATCH_BYTES)}});
    let details = ChangeDetails::of_version(Some((1, &small)), &big).unwrap();
    assert!(details.changes.is_none() && details.changes_elided);
    assert_eq!(details.previous_version, Some(1));
}

//! Unit tests of the parent module.

use super::*;
use crate::core::ids::ConfigId;
use crate::core::model::{AbTest, AbVariant, Metadata, NewVersion};
use serde_json::json;

/// The view of `v` in production for a caller at `fraction` of the assignment range, now.
fn in_production(v: &ConfigVersion, fraction: f64) -> Arc<Rendered> {
    select(
        v,
        Some("production"),
        &AssignmentInput::Value(fraction),
        Utc::now,
    )
    .unwrap()
}

fn version(doc: ConfigDocument) -> ConfigVersion {
    NewVersion {
        id: ConfigId::parse("svc").unwrap(),
        document: doc,
        metadata: Metadata {
            actor: "t".into(),
            message: None,
            ..Default::default()
        },
        checksum: String::new(),
        created_at: Utc::now(),
        rollback_of: None,
    }
    .numbered(1)
}

fn doc() -> ConfigDocument {
    ConfigDocument {
        config: json!({"timeout": 30, "color": "blue"}),
        overrides: [("production".to_string(), json!({"timeout": 10}))].into(),
        canary: Some(Canary {
            environment: "production".into(),
            traffic_percent: 50.0,
            config: json!({"timeout": 5}),
            start_at: Utc::now() - chrono::Duration::hours(1),
            end_at: None,
        }),
        ab_test: Some(AbTest {
            name: "colors".into(),
            environment: Some("production".into()),
            variants: vec![
                AbVariant {
                    name: "red".into(),
                    weight: 1,
                    config: json!({"color": "red"}),
                },
                AbVariant {
                    name: "green".into(),
                    weight: 1,
                    config: json!({"color": "green"}),
                },
            ],
        }),
    }
}

#[test]
fn layers_apply_in_order_override_canary_variant() {
    let v = version(doc());
    let r = in_production(&v, 0.1);
    let a = r.assignment.clone();
    assert_eq!(r.value(), json!({"timeout": 5, "color": "red"}));
    assert_eq!(
        a,
        Assignment {
            canary: true,
            variant: Some("red".into())
        }
    );
    let r = in_production(&v, 0.9);
    let a = r.assignment.clone();
    assert_eq!(r.value(), json!({"timeout": 10, "color": "green"}));
    assert!(!a.canary);
}

#[test]
fn other_environments_and_anonymous_callers_get_the_control_view() {
    let v = version(doc());
    let r = select(&v, Some("staging"), &AssignmentInput::Value(0.1), Utc::now).unwrap();
    let a = r.assignment.clone();
    assert_eq!(r.value(), json!({"timeout": 30, "color": "blue"}));
    assert_eq!(
        a,
        Assignment {
            canary: false,
            variant: None
        }
    );
    let r = select(&v, Some("production"), &AssignmentInput::None, Utc::now).unwrap();
    assert_eq!(r.value(), json!({"timeout": 10, "color": "blue"}));
}

#[test]
fn canary_outside_its_window_does_not_apply() {
    let mut d = doc();
    d.canary.as_mut().unwrap().start_at = Utc::now() + chrono::Duration::hours(1);
    let v = version(d);
    let a = in_production(&v, 0.0).assignment.clone();
    assert!(!a.canary);
    assert_eq!(
        valid_checksums(&v, "production", Utc::now())
            .expect("checksums")
            .len(),
        3
    );
}

#[test]
fn views_carry_their_whole_effective_document() {
    let v = version(doc());
    let r = in_production(&v, 0.9);
    let document: Value = serde_json::from_slice(&r.document).unwrap();
    assert_eq!(document["configId"], "svc");
    assert_eq!(document["version"], 1);
    assert_eq!(document["environment"], "production");
    assert_eq!(document["effectiveConfig"], r.value());
    assert_eq!(document["checksum"], r.checksum.as_str());
    assert_eq!(
        document["assignment"],
        json!({"canary": false, "variant": "green"})
    );
    assert_eq!(r.etag, document_etag(&r.document));
    assert_ne!(
        r.etag,
        format!("\"{}\"", r.checksum),
        "the ETag covers the whole document"
    );
}

#[test]
fn every_view_is_enumerated_for_validation() {
    let scopes: Vec<Option<String>> = all_layer_values(&doc())
        .into_iter()
        .map(|l| l.scope)
        .collect();
    assert!(scopes.contains(&None));
    assert!(scopes.contains(&Some("environment=production,canary".into())));
    assert!(scopes.contains(&Some("environment=production,canary,variant=green".into())));
}

#[test]
fn base_change_touches_every_environment() {
    let old = doc();
    let mut new = old.clone();
    new.config = json!({"timeout": 31});
    assert_eq!(changed_environments(Some(&old), &new).as_list(), vec!["*"]);
    let mut new = old.clone();
    new.overrides.insert("staging".into(), json!({"x": 1}));
    assert_eq!(
        changed_environments(Some(&old), &new).as_list(),
        vec!["staging"]
    );
}

use super::*;

fn parse(json: serde_json::Value) -> Strategy {
    serde_json::from_value(json).expect("a strategy")
}

#[test]
fn every_built_in_is_valid_and_ends_at_every_instance() {
    for (name, strategy) in built_ins() {
        strategy.check().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(strategy.plan().last().unwrap().share, Share::All, "{name}");
    }
}

#[test]
fn plans_follow_the_rollout() {
    let percents = |s: &Strategy| -> Vec<Share> { s.plan().iter().map(|s| s.share).collect() };
    let linear = parse(
        serde_json::json!({"rollout": {"type": "linear", "stepPercent": 30, "intervalSecs": 5}}),
    );
    assert_eq!(
        percents(&linear),
        [
            Share::Percent(30),
            Share::Percent(60),
            Share::Percent(90),
            Share::All
        ]
    );
    let exponential = parse(
        serde_json::json!({"rollout": {"type": "exponential", "growthFactor": 3.0, "intervalSecs": 5}}),
    );
    assert_eq!(
        percents(&exponential),
        [
            Share::Percent(1),
            Share::Percent(3),
            Share::Percent(9),
            Share::Percent(27),
            Share::Percent(81),
            Share::All
        ]
    );
    let canary = parse(
        serde_json::json!({"rollout": {"type": "canary", "steps": [{"percent": 10, "bakeSecs": 1}, {"percent": 100, "bakeSecs": 2}]}, "finalBakeSecs": 3}),
    );
    let plan = canary.plan();
    assert_eq!(plan.len(), 2);
    assert_eq!((plan[0].share, plan[0].bake_secs), (Share::Percent(10), 1));
    assert_eq!((plan[1].share, plan[1].bake_secs), (Share::All, 3));
    let close = parse(
        serde_json::json!({"rollout": {"type": "exponential", "initialPercent": 45, "growthFactor": 2.2, "intervalSecs": 5}}),
    );
    assert_eq!(
        percents(&close),
        [Share::Percent(45), Share::All],
        "99.000…01 % is not a step"
    );
    let rolling =
        parse(serde_json::json!({"rollout": {"type": "rolling", "batchSize": 2, "bakeSecs": 5}}));
    assert!(rolling.plan()[0].repeats);
    let blue_green = parse(serde_json::json!({"rollout": {"type": "blue-green"}}));
    assert!(blue_green.plan()[0].needs_promote);
    assert_eq!(
        parse(serde_json::json!({"rollout": {"type": "direct"}}))
            .plan()
            .len(),
        1
    );
}

#[test]
fn unknown_fields_and_types_are_refused() {
    for json in [
        serde_json::json!({"rollout": {"type": "direct"}, "colour": 1}),
        serde_json::json!({"rollout": {"type": "canary", "steps": [], "colour": 1}}),
        serde_json::json!({"rollout": {"type": "sideways"}}),
        serde_json::json!({"rollout": {"type": "direct"}, "gate": {"colour": 1}}),
        serde_json::json!({"rollout": {"type": "direct", "finalBakeSecs": 900}}),
    ] {
        assert!(
            serde_json::from_value::<Strategy>(json.clone()).is_err(),
            "{json}"
        );
    }
}

#[test]
fn bad_strategies_name_the_field() {
    let rollout = |rollout: serde_json::Value| serde_json::json!({ "rollout": rollout });
    let cases = [
        (
            rollout(serde_json::json!({"type": "canary", "steps": []})),
            "/rollout/steps",
        ),
        (
            rollout(
                serde_json::json!({"type": "canary", "steps": [{"percent": 50, "bakeSecs": 1}, {"percent": 40, "bakeSecs": 1}]}),
            ),
            "/rollout/steps/1/percent",
        ),
        (
            rollout(serde_json::json!({"type": "linear", "stepPercent": 0, "intervalSecs": 1})),
            "/rollout/stepPercent",
        ),
        (
            rollout(
                serde_json::json!({"type": "exponential", "growthFactor": 1.0, "intervalSecs": 1}),
            ),
            "/rollout/growthFactor",
        ),
        (
            rollout(serde_json::json!({"type": "rolling", "batchSize": 0, "bakeSecs": 1})),
            "/rollout/batchSize",
        ),
        (
            rollout(serde_json::json!({"type": "blue-green", "autoPromote": true})),
            "/rollout/promoteAfterSecs",
        ),
        (
            rollout(serde_json::json!({"type": "blue-green", "promoteAfterSecs": 600})),
            "/rollout/promoteAfterSecs",
        ),
        (
            serde_json::json!({"rollout": {"type": "direct"}, "gate": {"minAckRatio": 1.5}}),
            "/gate/minAckRatio",
        ),
        (
            serde_json::json!({"rollout": {"type": "direct"}, "finalBakeSecs": 999_999_999}),
            "/finalBakeSecs",
        ),
    ];
    for (json, field) in cases {
        match parse(json.clone()).check() {
            Err(Error::InvalidInput { field: named, .. }) => assert_eq!(named, field, "{json}"),
            other => panic!("{json}: {other:?}"),
        }
    }
}

//! Feature flags over REST on the real server (port 0, its own SQLite file): versions, history,
//! rollback, audit, targeting, deterministic rollout, and every refusal.

use crate::common;

use common::{TestServer, meta};
use serde_json::{Value, json};

fn checkout_flag() -> Value {
    json!({
        "description": "New checkout flow",
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "environments": {
            "production": {
                "enabled": true,
                "rules": [
                    {"id": "staff", "conditions": [
                        {"attribute": "email", "operator": "ends_with", "value": "@acme.com"}
                    ], "variant": "on"},
                    {"id": "beta", "targetKeys": ["user-7", "user-8"], "variant": "on"}
                ]
            },
            "staging": {"enabled": true, "defaultVariant": "on"},
            "dev": {"enabled": false, "defaultVariant": "off"}
        }
    })
}

#[tokio::test]
async fn flag_writes_are_versioned_listed_rolled_back_and_deleted() {
    let server = TestServer::spawn().await;
    assert_eq!(server.put_flag("new-checkout", checkout_flag()).await, 1);
    let mut changed = checkout_flag();
    changed["defaultVariant"] = json!("on");
    assert_eq!(server.put_flag("new-checkout", changed).await, 2);

    let (status, flag) = server.get_json("/api/v1/feature-flags/new-checkout").await;
    assert_eq!(status, 200);
    assert_eq!(flag["version"], 2);
    assert_eq!(flag["key"], "new-checkout");
    assert_eq!(flag["defaultVariant"], "on");
    assert_eq!(flag["checksum"].as_str().unwrap().len(), 64);

    let (_, list) = server.get_json("/api/v1/feature-flags").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, versions) = server
        .get_json("/api/v1/feature-flags/new-checkout/versions")
        .await;
    let numbers: Vec<u64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 1]);

    let (status, rolled) = server
        .post_json(
            "/api/v1/feature-flags/new-checkout/rollback",
            &json!({"targetVersion": 1, "metadata": meta("ops", "undo")}),
        )
        .await;
    assert_eq!(status, 201, "{rolled}");
    assert_eq!(rolled["version"], 3);
    assert_eq!(rolled["rollbackOf"], 1);
    let (_, flag) = server.get_json("/api/v1/feature-flags/new-checkout").await;
    assert_eq!(flag["defaultVariant"], "off");

    let (status, _) = server
        .delete_json(
            "/api/v1/feature-flags/new-checkout",
            &json!({"metadata": meta("ops", "retire")}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, problem) = server.get_json("/api/v1/feature-flags/new-checkout").await;
    assert_eq!(status, 404);
    assert_eq!(problem["code"], "not_found");
    // History stays, and a re-created flag takes the next number.
    let (status, _) = server
        .get_json("/api/v1/feature-flags/new-checkout/versions/2")
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.put_flag("new-checkout", checkout_flag()).await, 4);
}

#[tokio::test]
async fn flag_audit_is_separate_from_a_config_with_the_same_id() {
    let server = TestServer::spawn().await;
    server
        .put_config(
            "checkout",
            json!({"config": {"a": 1}, "metadata": meta("cfg-admin", "config")}),
        )
        .await;
    server.put_flag("checkout", checkout_flag()).await;
    let (_, flag_audit) = server
        .get_json("/api/v1/feature-flags/checkout/audit")
        .await;
    let records = flag_audit["items"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{flag_audit}");
    assert_eq!(records[0]["action"], "flag.put");
    assert_eq!(records[0]["flagKey"], "checkout");
    assert_eq!(records[0]["actor"], "tester");
    assert!(records[0].get("configId").is_none());
    let (_, config_audit) = server.get_json("/api/v1/configs/checkout/audit").await;
    let records = config_audit["items"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["action"], "config.put");
    let (_, all) = server.get_json("/api/v1/audit").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn evaluation_reports_value_variant_and_reason() {
    let server = TestServer::spawn().await;
    server.put_flag("new-checkout", checkout_flag()).await;
    let cases = [
        (
            Some("production"),
            json!({"targetingKey": "u1", "email": "x@acme.com"}),
            true,
            "on",
            "TARGETING_MATCH",
        ),
        (
            Some("production"),
            json!({"targetingKey": "user-7"}),
            true,
            "on",
            "TARGETING_MATCH",
        ),
        (
            Some("production"),
            json!({"targetingKey": "u1", "email": "x@other.com"}),
            false,
            "off",
            "DEFAULT",
        ),
        (Some("production"), json!({}), false, "off", "DEFAULT"),
        (
            Some("staging"),
            json!({"targetingKey": "u1"}),
            true,
            "on",
            "STATIC",
        ),
        (
            Some("dev"),
            json!({"targetingKey": "u1", "email": "x@acme.com"}),
            false,
            "off",
            "DISABLED",
        ),
        // An environment without targeting of its own uses the flag-level one.
        (
            Some("qa"),
            json!({"targetingKey": "u1"}),
            false,
            "off",
            "STATIC",
        ),
        (None, json!({"targetingKey": "u1"}), false, "off", "STATIC"),
    ];
    for (environment, context, value, variant, reason) in cases {
        let result = server
            .evaluate("new-checkout", environment, context.clone())
            .await;
        assert_eq!(
            result["value"], value,
            "{environment:?} {context}: {result}"
        );
        assert_eq!(result["variant"], variant, "{environment:?} {context}");
        assert_eq!(result["reason"], reason, "{environment:?} {context}");
        assert_eq!(result["version"], 1);
        assert_eq!(result["flagKey"], "new-checkout");
    }
}

/// One rule per operator; each context should match exactly the rule named.
#[tokio::test]
async fn every_operator_matches_what_it_says() {
    let server = TestServer::spawn().await;
    let rule = |id: &str, attribute: &str, operator: &str, value: Value| json!({"id": id, "conditions": [{"attribute": attribute, "operator": operator, "value": value}], "variant": id});
    let operators = [
        ("eq", "plan", json!("gold")),
        ("neq", "tier", json!(3)),
        ("in", "country", json!(["de", "fr"])),
        ("not_in", "region", json!(["us", "ca"])),
        ("contains", "tags", json!("beta")),
        ("starts_with", "path", json!("/admin")),
        ("ends_with", "email", json!("@acme.com")),
        ("regex", "device", json!("^ipad[0-9]+$")),
        ("gt", "age", json!(30)),
        ("gte", "score", json!(10.5)),
        ("lt", "latency", json!(5)),
        ("lte", "errors", json!(0)),
        ("semver_eq", "app", json!("2.0.0")),
        ("semver_gt", "sdk", json!("1.4.0")),
        ("semver_lt", "os", json!("v10.0.0")),
        ("before", "signup", json!("2024-01-01T00:00:00Z")),
        ("after", "renewal", json!(1_700_000_000)),
    ];
    let mut variants = serde_json::Map::new();
    variants.insert("none".into(), json!("none"));
    let mut rules = Vec::new();
    for (operator, attribute, value) in &operators {
        variants.insert(operator.to_string(), json!(operator));
        rules.push(rule(operator, attribute, operator, value.clone()));
    }
    server
        .put_flag(
            "operators",
            json!({"type": "string", "variants": variants, "defaultVariant": "none", "rules": rules}),
        )
        .await;
    let matching = [
        ("eq", json!({"plan": "gold"})),
        ("neq", json!({"tier": 2})),
        ("in", json!({"country": "fr"})),
        ("not_in", json!({"region": "eu"})),
        ("contains", json!({"tags": ["alpha", "beta"]})),
        ("starts_with", json!({"path": "/admin/users"})),
        ("ends_with", json!({"email": "a@acme.com"})),
        ("regex", json!({"device": "ipad12"})),
        ("gt", json!({"age": 31})),
        ("gte", json!({"score": 10.5})),
        ("lt", json!({"latency": 4.9})),
        ("lte", json!({"errors": 0})),
        ("semver_eq", json!({"app": "v2.0.0"})),
        ("semver_gt", json!({"sdk": "1.10.0"})),
        ("semver_lt", json!({"os": "9.9.9"})),
        ("before", json!({"signup": "2023-06-01T12:00:00Z"})),
        ("after", json!({"renewal": "2024-05-01T00:00:00Z"})),
    ];
    for (operator, context) in matching {
        let result = server.evaluate("operators", None, context.clone()).await;
        assert_eq!(result["variant"], operator, "{context}: {result}");
        assert_eq!(result["reason"], "TARGETING_MATCH");
    }
    let not_matching = [
        json!({"plan": "silver"}),
        json!({"tier": 3}),
        json!({"country": "us", "region": "us"}),
        json!({"tags": "gamma", "region": "ca"}),
        json!({"device": "iphone12", "region": "ca"}),
        json!({"age": 30, "region": "ca"}),
        json!({"sdk": "1.3.9", "region": "ca"}),
        json!({"sdk": "not-a-version", "region": "ca"}),
        json!({"signup": "2024-02-01T00:00:00Z", "region": "ca"}),
        json!({"age": "31", "region": "ca"}),
    ];
    for context in not_matching {
        let result = server.evaluate("operators", None, context.clone()).await;
        assert_eq!(result["variant"], "none", "{context}: {result}");
        assert_eq!(result["reason"], "DEFAULT");
    }
}

/// The golden vectors of docs/bucketing.md, through the API: `flag:new-ui:default` puts
/// `alice` at 0.96213 and `flag:new-ui:rule-1` puts `bob` at 0.76176.
#[tokio::test]
async fn rollout_follows_the_documented_bucketing() {
    let server = TestServer::spawn().await;
    let rollout = |percentage: f64| {
        json!({
            "type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "rollout": {"variant": "on", "percentage": percentage}
        })
    };
    let rule = |percentage: f64| {
        json!({
            "type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "rules": [{"id": "rule-1", "targetKeys": ["bob"], "variant": "on", "percentage": percentage}]
        })
    };
    let served = |result: Value| (result["value"].clone(), result["reason"].clone());
    server.put_flag("new-ui", rollout(96.21)).await;
    let alice = server
        .evaluate("new-ui", None, json!({"targetingKey": "alice"}))
        .await;
    assert_eq!(served(alice), (json!(false), json!("DEFAULT")));
    server.put_flag("new-ui", rollout(96.22)).await;
    let alice = server
        .evaluate("new-ui", None, json!({"targetingKey": "alice"}))
        .await;
    assert_eq!(served(alice), (json!(true), json!("SPLIT")));

    server.put_flag("new-ui", rule(76.17)).await;
    let bob = server
        .evaluate("new-ui", None, json!({"targetingKey": "bob"}))
        .await;
    assert_eq!(served(bob), (json!(false), json!("DEFAULT")));
    server.put_flag("new-ui", rule(76.18)).await;
    let bob = server
        .evaluate("new-ui", None, json!({"targetingKey": "bob"}))
        .await;
    assert_eq!(served(bob), (json!(true), json!("SPLIT")));
}

#[tokio::test]
async fn raising_the_rollout_percentage_keeps_everyone_who_was_in() {
    let server = TestServer::spawn().await;
    let keys: Vec<String> = (0..400).map(|i| format!("user-{i}")).collect();
    let mut was_on = vec![false; keys.len()];
    for percentage in [5.0, 20.0, 20.5, 50.0, 90.0, 100.0] {
        server
            .put_flag(
                "sticky",
                json!({"type": "boolean", "variants": {"on": true, "off": false},
                       "defaultVariant": "off",
                       "rollout": {"variant": "on", "percentage": percentage}}),
            )
            .await;
        let (status, batch) = server
            .post_json(
                "/api/v1/feature-flags/evaluate/batch",
                &json!({"flagKeys": ["sticky"], "context": {}}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(batch["results"][0]["errorCode"], "TARGETING_KEY_MISSING");
        let mut on = 0;
        for (index, key) in keys.iter().enumerate() {
            let result = server
                .evaluate("sticky", None, json!({"targetingKey": key}))
                .await;
            let now_on = result["value"] == true;
            assert!(
                !was_on[index] || now_on,
                "{key} left the rollout at {percentage}%"
            );
            was_on[index] = now_on;
            on += usize::from(now_on);
        }
        let share = on as f64 * 100.0 / keys.len() as f64;
        assert!(
            (share - percentage).abs() <= 7.0,
            "{percentage}% served {share}%"
        );
    }
}

#[tokio::test]
async fn splits_prerequisites_and_batches_evaluate_together() {
    let server = TestServer::spawn().await;
    server
        .put_flag(
            "billing-v2",
            json!({"type": "boolean", "variants": {"on": true, "off": false},
                   "defaultVariant": "off",
                   "rules": [{"id": "eu", "conditions": [
                       {"attribute": "region", "operator": "eq", "value": "eu"}], "variant": "on"}]}),
        )
        .await;
    server
        .put_flag(
            "checkout-theme",
            json!({"type": "string", "variants": {"blue": "blue", "green": "green", "classic": "classic"},
                   "defaultVariant": "classic", "services": ["web"],
                   "rules": [{"id": "v2-users",
                              "prerequisites": [{"flagKey": "billing-v2", "variants": ["on"]}],
                              "split": [{"variant": "blue", "weight": 1}, {"variant": "green", "weight": 1}]}]}),
        )
        .await;
    server
        .put_flag(
            "limits",
            json!({"type": "object", "variants": {"small": {"rps": 10}, "large": {"rps": 1000}},
                   "defaultVariant": "small", "services": ["api"]}),
        )
        .await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let result = server
            .evaluate(
                "checkout-theme",
                None,
                json!({"targetingKey": format!("k{i}"), "region": "eu"}),
            )
            .await;
        assert_eq!(result["reason"], "SPLIT");
        seen.insert(result["variant"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["blue", "green"].map(String::from).into());
    let result = server
        .evaluate(
            "checkout-theme",
            None,
            json!({"targetingKey": "k1", "region": "us"}),
        )
        .await;
    assert_eq!(
        (result["variant"].clone(), result["reason"].clone()),
        (json!("classic"), json!("DEFAULT"))
    );

    // Every flag meant for the web service (flags without services are for every service).
    let (status, batch) = server
        .post_json(
            "/api/v1/feature-flags/evaluate/batch",
            &json!({"service": "web", "context": {"targetingKey": "k1", "region": "us"}}),
        )
        .await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["flagKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["billing-v2", "checkout-theme"]);
    let (_, batch) = server
        .post_json(
            "/api/v1/feature-flags/evaluate/batch",
            &json!({"flagKeys": ["limits", "missing"], "context": {}}),
        )
        .await;
    assert_eq!(batch["results"][0]["value"], json!({"rps": 10}));
    assert_eq!(batch["results"][1]["reason"], "ERROR");
    assert_eq!(batch["results"][1]["errorCode"], "FLAG_NOT_FOUND");

    // A flag others depend on cannot be deleted.
    let (status, problem) = server
        .delete_json(
            "/api/v1/feature-flags/billing-v2",
            &json!({"metadata": meta("ops", "x")}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "conflict");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("checkout-theme")
    );
}

/// Each bad write names the field and leaves the flag as it was.
#[tokio::test]
async fn refused_flag_writes_name_the_field_and_change_nothing() {
    let server = TestServer::spawn().await;
    server.put_flag("base", checkout_flag()).await;
    server
        .put_flag(
            "dependent",
            json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "rules": [{"id": "r", "prerequisites": [{"flagKey": "base", "variants": ["on"]}], "variant": "on"}]}),
        )
        .await;
    let valid = || checkout_flag();
    let with = |pointer: &str, value: Value| {
        let mut flag = valid();
        *flag
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value;
        flag
    };
    let rule_to = |rule: Value| {
        let mut flag = valid();
        flag["rules"] = json!([rule]);
        flag
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "base",
            with("/defaultVariant", json!("maybe")),
            "/defaultVariant",
        ),
        ("base", with("/variants/on", json!("yes")), "/variants/on"),
        ("base", with("/variants", json!({})), "/variants"),
        ("base", with("/type", json!("date")), "/type"),
        (
            "base",
            with("/environments/production/rules/0/variant", json!("nope")),
            "/environments/production/rules/0/variant",
        ),
        (
            "base",
            with(
                "/environments/production/rules/0/conditions/0/operator",
                json!("like"),
            ),
            "/environments/production/rules/0/conditions/0/operator",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "conditions": [{"attribute": "a", "operator": "regex", "value": "(unclosed"}], "variant": "on"}),
            ),
            "/rules/0/conditions/0/value",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "conditions": [{"attribute": "a", "operator": "semver_gt", "value": "one"}], "variant": "on"}),
            ),
            "/rules/0/conditions/0/value",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "conditions": [{"attribute": "a", "operator": "before", "value": "yesterday"}], "variant": "on"}),
            ),
            "/rules/0/conditions/0/value",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "conditions": [{"attribute": "a", "operator": "in", "value": "de"}], "variant": "on"}),
            ),
            "/rules/0/conditions/0/value",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "conditions": [{"attribute": "a", "operator": "gt", "value": "5"}], "variant": "on"}),
            ),
            "/rules/0/conditions/0/value",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "variant": "on", "split": [{"variant": "off", "weight": 1}]}),
            ),
            "/rules/0",
        ),
        (
            "base",
            rule_to(json!({"id": "r", "split": [{"variant": "on", "weight": 0}]})),
            "/rules/0/split/0/weight",
        ),
        (
            "base",
            rule_to(json!({"id": "r", "split": [{"variant": "on", "weight": 1}], "percentage": 5})),
            "/rules/0/percentage",
        ),
        (
            "base",
            rule_to(json!({"id": "r", "variant": "on", "percentage": 12.345})),
            "/rules/0/percentage",
        ),
        (
            "base",
            rule_to(json!({"id": "bad id", "variant": "on"})),
            "/rules/0/id",
        ),
        (
            "base",
            rule_to(json!({"id": "default", "variant": "on"})),
            "/rules/0/id",
        ),
        (
            "base",
            rule_to(json!({"id": "r", "variant": "on", "colour": "red"})),
            "/rules/0/colour",
        ),
        (
            "base",
            with("/environments/production/rules/1/id", json!("staff")),
            "/environments/production/rules/1/id",
        ),
        (
            "base",
            with(
                "/environments/dev",
                json!({"rollout": {"variant": "on", "percentage": 101}}),
            ),
            "/environments/dev/rollout/percentage",
        ),
        (
            "base",
            with("/environments/dev/defaultVariant", json!("nope")),
            "/environments/dev/defaultVariant",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "prerequisites": [{"flagKey": "ghost", "variants": ["on"]}], "variant": "on"}),
            ),
            "/rules/0/prerequisites/0/flagKey",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "prerequisites": [{"flagKey": "dependent", "variants": ["on"]}], "variant": "on"}),
            ),
            "/rules/0/prerequisites/0/flagKey",
        ),
        (
            "base",
            rule_to(
                json!({"id": "r", "prerequisites": [{"flagKey": "base", "variants": ["on"]}], "variant": "on"}),
            ),
            "/rules/0/prerequisites/0/flagKey",
        ),
        (
            "dependent",
            {
                let mut flag = valid();
                flag["rules"] = json!([{"id": "r", "prerequisites": [{"flagKey": "base", "variants": ["maybe"]}], "variant": "on"}]);
                flag
            },
            "/rules/0/prerequisites/0/variants/0",
        ),
        ("base", with("/description", json!(7)), "/description"),
        (
            "base",
            {
                let mut flag = valid();
                flag["owner"] = json!("me");
                flag
            },
            "/owner",
        ),
        (
            "base",
            {
                let mut flag = valid();
                flag["expectedVersion"] = json!("one");
                flag
            },
            "/expectedVersion",
        ),
    ];
    for (key, mut body, field) in cases {
        body["metadata"] = meta("tester", "bad");
        let (status, problem) = server
            .put_json(&format!("/api/v1/feature-flags/{key}"), &body)
            .await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["code"], "invalid_input", "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (_, base) = server.get_json("/api/v1/feature-flags/base").await;
    assert_eq!(base["version"], 1);

    // Version conflicts: 409 with the current version, nothing written.
    let mut body = valid();
    body["metadata"] = meta("tester", "stale");
    body["expectedVersion"] = json!(7);
    let (status, problem) = server.put_json("/api/v1/feature-flags/base", &body).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "version_conflict");
    assert_eq!(problem["currentVersion"], 1);
    // Missing metadata, malformed JSON, an invalid key in the path.
    let (status, problem) = server
        .put_json("/api/v1/feature-flags/base", &valid())
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("/metadata"))
    );
    let (status, problem) = server
        .put_raw("/api/v1/feature-flags/base", "{\"type\": ")
        .await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = server.get_json("/api/v1/feature-flags/bad%20key").await;
    assert_eq!((status, problem["field"].clone()), (400, json!("flagKey")));
    let (_, base) = server.get_json("/api/v1/feature-flags/base").await;
    assert_eq!(base["version"], 1);
    let (_, audit) = server.get_json("/api/v1/feature-flags/base/audit").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn refused_evaluations_name_the_field() {
    let server = TestServer::spawn().await;
    server.put_flag("f", checkout_flag()).await;
    let cases = [
        (json!({"flagKey": "f", "context": []}), "/context"),
        (
            json!({"flagKey": "f", "context": {"targetingKey": 5}}),
            "/context/targetingKey",
        ),
        (
            json!({"flagKey": "f", "environment": "Prod!"}),
            "/environment",
        ),
        (json!({"flagKey": "no such key"}), "/flagKey"),
        (json!({"flagKey": "f", "extra": 1}), "/extra"),
        (json!({"context": {}}), "/flagKey"),
    ];
    for (body, field) in cases {
        let (status, problem) = server
            .post_json("/api/v1/feature-flags/evaluate", &body)
            .await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (status, problem) = server
        .post_json(
            "/api/v1/feature-flags/evaluate",
            &json!({"flagKey": "ghost"}),
        )
        .await;
    assert_eq!((status, problem["code"].clone()), (404, json!("not_found")));
    let keys: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
    let (status, problem) = server
        .post_json(
            "/api/v1/feature-flags/evaluate/batch",
            &json!({"flagKeys": keys}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("/flagKeys"))
    );
}

#[tokio::test]
async fn flags_survive_a_restart() {
    let server = TestServer::spawn().await;
    server.put_flag("durable", checkout_flag()).await;
    let server = server.restart().await;
    let result = server
        .evaluate(
            "durable",
            Some("production"),
            json!({"targetingKey": "user-8"}),
        )
        .await;
    assert_eq!(result["value"], true);
    assert_eq!(result["version"], 1);
}

/// A prerequisite chain may be at most eight hops deep wherever it is lengthened: below the
/// flag written (it names a deep chain) and above it (flags already depend on it).
#[tokio::test]
async fn prerequisite_chains_stay_eight_hops_deep_above_and_below_the_flag_written() {
    let server = TestServer::spawn().await;
    let flag = |prerequisite: Option<&str>| {
        let mut body = json!({"type": "boolean", "variants": {"on": true, "off": false},
            "defaultVariant": "off", "metadata": meta("tester", "chain")});
        if let Some(key) = prerequisite {
            body["rules"] = json!([{"id": "r", "variant": "on",
                "prerequisites": [{"flagKey": key, "variants": ["on"]}]}]);
        }
        body
    };
    let put = |key: String, body: Value| {
        let server = &server;
        async move {
            server
                .put_json(&format!("/api/v1/feature-flags/{key}"), &body)
                .await
        }
    };
    // f1 → f2 → … → f9: eight hops, the most allowed.
    assert_eq!(put("f9".into(), flag(None)).await.0, 201);
    for n in (1..=8).rev() {
        let (status, body) = put(format!("f{n}"), flag(Some(&format!("f{}", n + 1)))).await;
        assert_eq!(status, 201, "f{n}: {body}");
    }
    assert_eq!(put("z".into(), flag(None)).await.0, 201);
    for (key, prerequisite) in [("f0", "f1"), ("f9", "z")] {
        let (status, problem) = put(key.into(), flag(Some(prerequisite))).await;
        assert_eq!(status, 400, "{key} → {prerequisite}: {problem}");
        assert_eq!(
            problem["field"], "/rules/0/prerequisites/0/flagKey",
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("at most 8"),
            "{problem}"
        );
    }
    // Shortening the chain is fine, and so is a prerequisite beside it.
    let (status, body) = put("f8".into(), flag(None)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = put("f9".into(), flag(Some("z"))).await;
    assert_eq!(status, 201, "{body}");
    let evaluated = server
        .evaluate("f1", None, json!({"targetingKey": "user-1"}))
        .await;
    assert!(
        evaluated.get("errorCode").is_none_or(Value::is_null),
        "{evaluated}"
    );
}

//! The document against the router it describes. The router's routes are read from its
//! `Debug` form (axum has no route listing): if an axum upgrade changes that form, the parse
//! finds no routes and `every_route_is_documented_and_every_operation_routed` fails loudly.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::super::{HttpLimits, documented_routes};

const METHODS: [&str; 9] = [
    "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
];

fn limits() -> HttpLimits {
    HttpLimits {
        max_body_bytes: 1,
        request_timeout: Duration::from_secs(1),
    }
}

/// `(METHOD, path)` of every route the axum router holds.
fn routed() -> BTreeSet<(String, String)> {
    let (router, _) = documented_routes(&limits());
    let text = format!("{router:?}");
    // `routes: {RouteId(n): MethodRouter(MethodRouter { get: …, head: None, … }), …}` and
    // `node: Node { paths: {RouteId(n): "/path", …} }`.
    // The fallback router (after the routes) has a path table of its own: left out.
    let text = &text[..text.find("fallback_router:").expect("the fallback router")];
    let paths_at = text.find("paths: {").expect("the router's path table");
    let paths: Vec<(String, String)> = text[paths_at..]
        .split("RouteId(")
        .skip(1)
        .filter_map(|entry| {
            let (id, rest) = entry.split_once("): \"")?;
            let (path, _) = rest.split_once('"')?;
            Some((id.to_owned(), path.to_owned()))
        })
        .collect();
    let routes = &text[..paths_at];
    let mut found = BTreeSet::new();
    for (id, path) in paths {
        let start = routes
            .find(&format!("RouteId({id}): MethodRouter(MethodRouter {{"))
            .unwrap_or_else(|| panic!("route {id} ({path}) is a method router"));
        let endpoint = &routes[start..];
        let endpoint = &endpoint[..endpoint.find("fallback:").expect("fields end in fallback")];
        for method in METHODS {
            let field = format!("{method}: ");
            let at = endpoint
                .find(&format!(" {field}"))
                .unwrap_or_else(|| panic!("{method} in the method router of {path}"));
            if !endpoint[at + 1 + field.len()..].starts_with("None") {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

fn document() -> Value {
    serde_json::from_str(super::json()).expect("the document is JSON")
}

/// `(METHOD, path)` of every operation the document describes.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    let routed = routed();
    assert!(routed.len() > 60, "parsed only {} routes", routed.len());
    let documented = documented(&document());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

fn operations(document: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((format!("{} {path}", method.to_uppercase()), operation));
            }
        }
    }
    found
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(members) => {
                if let Some(Value::String(target)) = members.get("$ref") {
                    refs.push(target);
                }
                members.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let document = document();
    let mut refs = Vec::new();
    walk(&document, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
}

#[test]
fn operation_ids_are_unique() {
    let document = document();
    let mut seen = BTreeSet::new();
    for (operation, body) in operations(&document) {
        let id = body["operationId"].as_str().expect("an operationId");
        assert!(
            seen.insert(id.to_owned()),
            "{operation}: operationId {id} is used twice"
        );
    }
}

#[test]
fn every_operation_answers_errors_as_problem_documents() {
    let document = document();
    let problem_responses = document["components"]["responses"]
        .as_object()
        .expect("response components");
    for (name, response) in problem_responses {
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{name}"
        );
    }
    for (operation, body) in operations(&document) {
        let responses = body["responses"].as_object().expect("responses");
        let problems = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .filter(|(_, response)| {
                response["$ref"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("#/components/responses/"))
            })
            .count();
        assert!(problems > 0, "{operation} lists no problem+json answer");
        // OFREP answers in its protocol's shape; `/health` answers 503 with its own body.
        if !operation.contains(" /ofrep/") && operation != "GET /health" {
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response.get("$ref").is_some(),
                        "{operation} answers {status} without a problem document"
                    );
                }
            }
        }
    }
}

#[test]
fn open_routes_need_no_credential_and_the_rest_a_bearer_token() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (operation, body) in operations(&document) {
        let path = operation.split_once(' ').expect("METHOD path").1;
        let open = super::super::access::OPEN_ROUTES.contains(&path);
        assert_eq!(
            body.get("security") == Some(&serde_json::json!([])),
            open,
            "{operation}"
        );
        assert_eq!(body["responses"].get("401").is_some(), !open, "{operation}");
    }
}

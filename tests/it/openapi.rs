//! The OpenAPI document: served without a credential, the same bytes as docs/openapi.json, and
//! describing exactly the routes the running server answers.
//!
//! Regenerate docs/openapi.json after changing a route or a type it shows:
//! `UPDATE_OPENAPI=1 cargo test --test it openapi`.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::authorization::{ADMIN, secured};
use crate::common::TestServer;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
const DOCUMENT: &str = "/api/v1/openapi.json";

#[tokio::test]
async fn committed_document_is_the_one_the_server_serves() {
    let server = TestServer::spawn().await;
    let response = server.get(DOCUMENT).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.expect("the document");
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &served).expect("docs/openapi.json written");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is not what the server serves; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --test it openapi`"
    );
    let document: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn document_needs_no_credential_while_other_routes_still_do() {
    let server = secured("").await;
    let response = server.get(DOCUMENT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.expect("JSON");
    assert!(document["paths"][DOCUMENT]["get"].is_object());
    assert_eq!(
        server.get("/api/v1/configs").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A request for every path a method could be routed on, with path parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{version}", "1")
        .replace("{delivery}", "1")
        .replace("{action}", "pause")
        .replace("{id}", "probe-1")
        .replace("{key}", "probe-1")
        .replace("{name}", "probe-1")
        .replace("{service}", "probe-1")
}

/// What the server does with `method path`: answered by a route, or by the fallbacks (405 for
/// a method the path lacks, a `route` 404 for a path no route has).
async fn routed(server: &crate::common::TestServer, method: &Method, path: &str) -> bool {
    let response = server
        .client
        .request(method.clone(), server.url(&concrete(path)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("request");
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return false;
    }
    if status != StatusCode::NOT_FOUND {
        return true;
    }
    // Drained only when it is not a stream (the watch route answers with one).
    let body: Value = response.json().await.unwrap_or(Value::Null);
    !body["detail"]
        .as_str()
        .is_some_and(|detail| detail.starts_with("route '"))
}

#[tokio::test]
async fn server_routes_exactly_the_documented_methods_of_each_path() {
    let server = secured("").await;
    let document: Value = server.get(DOCUMENT).await.json().await.expect("JSON");
    let methods = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
    ];
    let mut wrong = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            if routed(&server, method, path).await != documented {
                let what = if documented {
                    "not routed"
                } else {
                    "undocumented"
                };
                wrong.insert(format!("{method} {path}: {what}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

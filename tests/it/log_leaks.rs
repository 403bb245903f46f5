//! No token or secret in any log line, audit record, error or stored row: the real binary
//! with debug logs captured, driven through token creation, use, misuse and revocation,
//! JWTs, and secret resolution.

use crate::common;

use common::binary::start_binary_with;
use common::body_of;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-that-must-never-be-logged-42";
const SECRET: &str = "db-password-that-must-never-be-logged";
const JWT_SECRET: &str = "jwt-secret-that-must-never-be-logged-0123456789";
const STORED: &str = "stored-secret-that-must-never-be-logged-9f8e";

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    body_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn tokens_and_secrets_never_reach_logs_audit_errors_or_storage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leaks.db");
    let server = start_binary_with(
        &db,
        &[
            ("SUMMIT_ADMIN_TOKEN", ADMIN),
            ("SUMMIT_LOG", "debug"),
            ("SUMMIT_SECRET_ENV_PREFIX", "LEAK_IT_"),
            ("LEAK_IT_PASSWORD", SECRET),
            ("SUMMIT_JWT_HS256_SECRET", JWT_SECRET),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    use reqwest::Method;

    let (status, created) = call(
        &client,
        Method::POST,
        url("/api/v1/tokens"),
        ADMIN,
        Some(json!({"name": "ci", "roles": ["config-admin", "secrets-admin"]})),
    )
    .await;
    assert_eq!(status, 201);
    let token = created["tokenText"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let body = json!({"config": {"password": {"$secret": "env:LEAK_IT_PASSWORD"}, "n": 1},
                      "metadata": {"actor": "ci"}});
    assert_eq!(
        call(
            &client,
            Method::PUT,
            url("/api/v1/configs/app"),
            &token,
            Some(body)
        )
        .await
        .0,
        201
    );
    let (status, resolved) = call(
        &client,
        Method::GET,
        url("/api/v1/configs/app/effective?resolveSecrets=true"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        resolved["effectiveConfig"]["password"], SECRET,
        "asked for, with the right"
    );
    // The built-in store: written, read back (audited), resolved through a reference.
    let (status, _) = call(
        &client,
        Method::PUT,
        url("/api/v1/secrets/stored"),
        &token,
        Some(json!({"value": STORED, "metadata": {"actor": "ci"}})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, read) = call(
        &client,
        Method::GET,
        url("/api/v1/secrets/stored/value"),
        &token,
        None,
    )
    .await;
    assert_eq!((status, &read["value"]), (200, &json!(STORED)));
    let body =
        json!({"config": {"stored": {"$secret": "store:stored"}}, "metadata": {"actor": "ci"}});
    assert_eq!(
        call(
            &client,
            Method::PUT,
            url("/api/v1/configs/uses-store"),
            &token,
            Some(body)
        )
        .await
        .0,
        201
    );
    let (status, resolved) = call(
        &client,
        Method::GET,
        url("/api/v1/configs/uses-store/effective?resolveSecrets=true"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, &resolved["effectiveConfig"]["stored"]),
        (200, &json!(STORED))
    );
    // A rotation: the value it generates is as secret as a written one.
    let policy = json!({"intervalSecs": 86400, "gracePeriodSecs": 60,
                        "generator": {"type": "bytes", "length": 24, "encoding": "hex"}});
    let (status, _) = call(
        &client,
        Method::PUT,
        url("/api/v1/secrets/rotated"),
        &token,
        Some(
            json!({"value": "initial-value-of-rotated", "metadata": {"actor": "ci"},
                    "rotation": policy}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &client,
        Method::POST,
        url("/api/v1/secrets/rotated/rotate"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 201);
    let (status, read) = call(
        &client,
        Method::GET,
        url("/api/v1/secrets/rotated/value"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let generated = read["value"]
        .as_str()
        .expect("a generated value")
        .to_owned();
    assert_eq!(generated.len(), 48);
    // A bad body and a bad id with a valid token; a wrong and a mangled token.
    call(
        &client,
        Method::PUT,
        url("/api/v1/configs/app"),
        &token,
        Some(json!({"config": 1})),
    )
    .await;
    call(
        &client,
        Method::GET,
        url("/api/v1/configs/BAD"),
        &token,
        None,
    )
    .await;
    let wrong = format!("{token}x");
    let (status, problem) = call(&client, Method::GET, url("/api/v1/configs"), &wrong, None).await;
    assert_eq!(status, 401);
    assert!(!problem.to_string().contains(&wrong));
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "svc", "roles": ["config-reader"], "exp": chrono::Utc::now().timestamp() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        call(&client, Method::GET, url("/api/v1/configs"), &jwt, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &client,
            Method::PUT,
            url("/api/v1/configs/app"),
            &jwt,
            Some(json!({"config": {}, "metadata": {"actor": "x"}}))
        )
        .await
        .0,
        403
    );
    // Revoke, then use the revoked token.
    assert_eq!(
        call(
            &client,
            Method::DELETE,
            url(&format!("/api/v1/tokens/{id}")),
            ADMIN,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&client, Method::GET, url("/api/v1/configs"), &token, None)
            .await
            .0,
        401
    );
    // Records and listings.
    let (_, audit) = call(
        &client,
        Method::GET,
        url("/api/v1/audit?limit=500"),
        ADMIN,
        None,
    )
    .await;
    let (_, denied) = call(
        &client,
        Method::GET,
        url("/api/v1/audit/denied"),
        ADMIN,
        None,
    )
    .await;
    let (_, tokens) = call(&client, Method::GET, url("/api/v1/tokens"), ADMIN, None).await;
    let captured = server.logs.clone();
    server.terminate().await;
    let logs = captured.lock().unwrap().clone();
    assert!(logs.len() > 5, "the logs were captured: {logs:?}");
    let stored = std::fs::read(&db).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("leaks.db-wal")).unwrap_or_default();
    for (what, needle) in [
        ("admin token", ADMIN),
        ("API token", &token),
        ("secret", SECRET),
        ("stored secret", STORED),
        ("generated secret", &generated),
        ("JWT secret", JWT_SECRET),
        ("JWT", &jwt),
        ("wrong token", &wrong),
    ] {
        for line in &logs {
            assert!(!line.contains(needle), "{what} in a log line: {line}");
        }
        for (name, record) in [
            ("audit", &audit),
            ("denials", &denied),
            ("token list", &tokens),
        ] {
            assert!(!record.to_string().contains(needle), "{what} in the {name}");
        }
        for bytes in [&stored, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{what} in the database files"
            );
        }
    }
}

#[tokio::test]
async fn the_first_admin_token_goes_to_a_file_and_only_its_path_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(&dir.path().join("fresh.db"), &[]).await;
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path)
        .expect("the admin token file")
        .trim()
        .to_owned();
    let (status, _) = call(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        format!("{}/api/v1/tokens", server.base),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let captured = server.logs.clone();
    server.terminate().await;
    let logs = captured.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.contains("admin-token") && l.contains("first start")),
        "{logs:?}"
    );
    assert!(
        logs.iter().all(|l| !l.contains(&token)),
        "the admin token was logged"
    );
}

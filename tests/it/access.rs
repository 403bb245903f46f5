//! Access control over REST on the real server: 401 without credentials, a role × endpoint
//! matrix, scopes, revocation, rate limits, JWTs, audit of actors and denied attempts.

use crate::common;

use common::{TestServer, body_of, meta};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-access-tests-0123456789";

async fn secured(tune: impl FnOnce(&mut summit_config::settings::Settings)) -> TestServer {
    TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        tune(s);
    })
    .await
}

/// One request with an optional bearer token: (status, body).
async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    body_of(request.send().await.expect("request")).await
}

/// Creates a token with `roles` (and `scopes`) through the API; returns its text.
async fn token(server: &TestServer, name: &str, roles: &[&str], scopes: Value) -> String {
    let (status, created) = call(
        server,
        Some(ADMIN),
        Method::POST,
        "/api/v1/tokens",
        Some(&json!({"name": name, "roles": roles, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("hash").is_none(), "{created}");
    created["tokenText"].as_str().unwrap().to_owned()
}

fn config_body() -> Value {
    json!({
        "config": {"timeoutMs": 1000, "password": {"$secret": "env:ACCESS_IT_PASSWORD"}},
        "overrides": {"staging": {"timeoutMs": 500}, "production": {"timeoutMs": 800}},
        "metadata": meta("mallory", "setup")
    })
}

#[tokio::test]
async fn requests_without_valid_credentials_are_401_and_probes_stay_open() {
    let server = secured(|_| {}).await;
    for token in [None, Some("sc_0000"), Some("not-a-token"), Some("a.b.c")] {
        let response = {
            let mut request = server.client.get(server.url("/api/v1/configs"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap()
        };
        assert_eq!(response.status(), 401, "{token:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let (_, problem) = body_of(response).await;
        assert_eq!(problem["code"], "unauthenticated");
        if let Some(token) = token {
            assert!(
                !problem.to_string().contains(token),
                "the token is echoed: {problem}"
            );
        }
    }
    for probe in ["/health", "/live", "/ready", "/metrics"] {
        assert_eq!(server.get(probe).await.status(), 200, "{probe}");
    }
    // The admin token works.
    let (status, _) = call(&server, Some(ADMIN), Method::GET, "/api/v1/configs", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_role_gets_exactly_its_endpoints() {
    // ACCESS_IT_PASSWORD is set before main (common::env).
    let server = secured(|s| s.secret_env_prefix = "ACCESS_IT_".into()).await;
    let (status, _) = call(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/api/v1/configs/app",
        Some(&config_body()),
    )
    .await;
    assert_eq!(status, 201);
    server.put_flag_as(ADMIN, "beta", json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "off"})).await;
    let reader = token(&server, "reader", &["config-reader"], json!({})).await;
    let writer = token(&server, "writer", &["config-admin"], json!({})).await;
    let secrets = token(&server, "secrets", &["secrets-admin"], json!({})).await;
    let roles = [
        ("reader", &reader),
        ("config-admin", &writer),
        ("secrets-admin", &secrets),
        ("admin", &ADMIN.to_owned()),
    ];

    let flag = json!({"type": "boolean", "variants": {"on": true, "off": false}, "defaultVariant": "on", "metadata": meta("x", "y")});
    let schema = json!({"schema": {"type": "object"}, "metadata": meta("x", "y")});
    let applied = json!({"environment": "staging", "instanceId": "i-1", "version": 1, "checksum": "a".repeat(64)});
    let new_token = json!({"name": "made-in-matrix", "roles": ["config-reader"]});
    // (method, path, body, roles allowed)
    let matrix: Vec<(Method, &str, Option<Value>, &[&str])> = vec![
        (
            Method::GET,
            "/api/v1/configs",
            None,
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::GET,
            "/api/v1/configs/app",
            None,
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::GET,
            "/api/v1/configs/app/effective?environment=staging",
            None,
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::GET,
            "/api/v1/configs/app/effective?environment=staging&resolveSecrets=true",
            None,
            &["secrets-admin", "admin"],
        ),
        (
            Method::GET,
            "/api/v1/configs/app/versions",
            None,
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::GET,
            "/api/v1/audit",
            None,
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::PUT,
            "/api/v1/configs/app",
            Some(config_body()),
            &["config-admin", "admin"],
        ),
        (
            Method::PUT,
            "/api/v1/configs/app/schema",
            Some(schema),
            &["config-admin", "admin"],
        ),
        (
            Method::POST,
            "/api/v1/configs/app/applied",
            Some(applied),
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::PUT,
            "/api/v1/feature-flags/beta",
            Some(flag),
            &["config-admin", "admin"],
        ),
        (
            Method::POST,
            "/api/v1/feature-flags/evaluate",
            Some(json!({"flagKey": "beta"})),
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (
            Method::POST,
            "/ofrep/v1/evaluate/flags/beta",
            Some(json!({"context": {}})),
            &["reader", "config-admin", "secrets-admin", "admin"],
        ),
        (Method::GET, "/api/v1/tokens", None, &["admin"]),
        (Method::POST, "/api/v1/tokens", Some(new_token), &["admin"]),
        (Method::GET, "/api/v1/audit/denied", None, &["admin"]),
    ];
    for (method, path, body, allowed) in &matrix {
        let (status, _) = call(&server, None, method.clone(), path, body.as_ref()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        for (role, token) in roles {
            let (status, answer) =
                call(&server, Some(token), method.clone(), path, body.as_ref()).await;
            if allowed.contains(&role) {
                assert!(
                    (200..300).contains(&status),
                    "{role} {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role} {method} {path}: {answer}");
                assert_eq!(answer["code"], "forbidden");
            }
        }
    }
    // Only identities allowed to read secrets ever see the value.
    let (_, plain) = call(
        &server,
        Some(&reader),
        Method::GET,
        "/api/v1/configs/app/effective?environment=staging",
        None,
    )
    .await;
    assert!(!plain.to_string().contains("matrix-secret-value"));
    let (_, resolved) = call(
        &server,
        Some(&secrets),
        Method::GET,
        "/api/v1/configs/app/effective?environment=staging&resolveSecrets=true",
        None,
    )
    .await;
    assert_eq!(
        resolved["effectiveConfig"]["password"],
        "matrix-secret-value"
    );

    // Every refusal is on record, with who and what.
    let (status, denied) = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/api/v1/audit/denied?limit=500",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let records = denied["items"].as_array().unwrap();
    assert!(
        records.iter().any(|d| d["actor"] == "token:reader"
            && d["operation"] == "PUT /api/v1/configs/{id}"
            && d["resource"] == "app"),
        "{denied}"
    );
    assert!(
        records
            .iter()
            .any(|d| d["actor"] == "token:writer" && d["operation"] == "POST /api/v1/tokens")
    );
    assert!(
        !denied.to_string().contains(&reader),
        "a token text in the denial record"
    );
}

#[tokio::test]
async fn audit_names_the_authenticated_actor_and_keeps_the_claimed_one_as_on_behalf_of() {
    let server = secured(|_| {}).await;
    let writer = token(&server, "deployer", &["config-admin"], json!({})).await;
    let (status, _) = call(
        &server,
        Some(&writer),
        Method::PUT,
        "/api/v1/configs/app",
        Some(&config_body()),
    )
    .await;
    assert_eq!(status, 201);
    let (_, audit) = call(
        &server,
        Some(&writer),
        Method::GET,
        "/api/v1/configs/app/audit",
        None,
    )
    .await;
    let record = &audit["items"][0];
    assert_eq!(record["actor"], "token:deployer");
    assert_eq!(record["onBehalfOf"], "mallory");
    let (_, version) = call(
        &server,
        Some(&writer),
        Method::GET,
        "/api/v1/configs/app",
        None,
    )
    .await;
    assert_eq!(version["metadata"]["actor"], "token:deployer");
    // Token management is audited too, without the token.
    let (_, all) = call(&server, Some(ADMIN), Method::GET, "/api/v1/audit", None).await;
    let created = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "token.create")
        .unwrap()
        .clone();
    assert_eq!(created["actor"], "admin");
    assert!(!all.to_string().contains(&writer));
}

#[tokio::test]
async fn scopes_limit_ids_and_environments() {
    let server = secured(|_| {}).await;
    for id in ["payments.api", "search.api"] {
        let (status, _) = call(
            &server,
            Some(ADMIN),
            Method::PUT,
            &format!("/api/v1/configs/{id}"),
            Some(&config_body()),
        )
        .await;
        assert_eq!(status, 201);
    }
    let scoped = token(
        &server,
        "payments-staging",
        &["config-admin"],
        json!({"configPrefixes": ["payments."], "environments": ["staging"]}),
    )
    .await;
    let get = |path: &'static str| {
        let (server, scoped) = (&server, scoped.clone());
        async move { call(server, Some(&scoped), Method::GET, path, None).await.0 }
    };
    assert_eq!(
        get("/api/v1/configs/payments.api/effective?environment=staging").await,
        200
    );
    assert_eq!(
        get("/api/v1/configs/payments.api/effective?environment=production").await,
        403
    );
    assert_eq!(get("/api/v1/configs/payments.api/effective").await, 403);
    assert_eq!(get("/api/v1/configs/search.api").await, 403);
    assert_eq!(get("/api/v1/audit").await, 403);
    // Watches: only what the scope reaches.
    for (query, status) in [
        ("configId=payments.api", 200),
        ("prefix=payments.", 200),
        ("prefix=", 403),
        ("prefix=pay", 403),
        ("flags=true", 403),
        ("flagKey=search.flag", 403),
        ("", 403),
    ] {
        let response = server
            .client
            .get(server.url(&format!("/api/v1/watch?{query}")))
            .bearer_auth(&scoped)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "watch?{query}");
    }
    let (_, list) = call(&server, Some(&scoped), Method::GET, "/api/v1/configs", None).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["configId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["payments.api"]);

    // Writes: a staging-only change passes; one that touches the base (every environment) or
    // production is refused, and nothing is written.
    let mut staging_only = config_body();
    staging_only["overrides"]["staging"]["timeoutMs"] = json!(450);
    let (status, answer) = call(
        &server,
        Some(&scoped),
        Method::PUT,
        "/api/v1/configs/payments.api",
        Some(&staging_only),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let mut base_change = staging_only.clone();
    base_change["config"]["timeoutMs"] = json!(1);
    let (status, answer) = call(
        &server,
        Some(&scoped),
        Method::PUT,
        "/api/v1/configs/payments.api",
        Some(&base_change),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = call(
        &server,
        Some(&scoped),
        Method::DELETE,
        "/api/v1/configs/payments.api",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (_, current) = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/api/v1/configs/payments.api",
        None,
    )
    .await;
    assert_eq!(current["version"], 2);
    let (_, denied) = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/api/v1/audit/denied",
        None,
    )
    .await;
    assert!(
        denied["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["operation"] == "write")
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let server = secured(|_| {}).await;
    let reader = token(&server, "short-lived", &["config-reader"], json!({})).await;
    assert_eq!(
        call(&server, Some(&reader), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
    let (_, tokens) = call(&server, Some(ADMIN), Method::GET, "/api/v1/tokens", None).await;
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short-lived")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &server,
        Some(ADMIN),
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) =
        call(&server, Some(&reader), Method::GET, "/api/v1/configs", None).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (401, json!("unauthenticated"))
    );
    let (status, _) = call(
        &server,
        Some(ADMIN),
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 409, "revoking twice");
    let (_, tokens) = call(&server, Some(ADMIN), Method::GET, "/api/v1/tokens", None).await;
    assert!(tokens.to_string().contains("revokedAt"));
    // Bad token requests change nothing.
    let (status, problem) = call(
        &server,
        Some(ADMIN),
        Method::POST,
        "/api/v1/tokens",
        Some(&json!({"name": "x", "roles": ["root"]})),
    )
    .await;
    assert_eq!((status, problem["field"].clone()), (400, json!("/roles/0")));
    let (status, problem) = call(
        &server,
        Some(ADMIN),
        Method::POST,
        "/api/v1/tokens",
        Some(&json!({"name": "x", "roles": []})),
    )
    .await;
    assert_eq!((status, problem["field"].clone()), (400, json!("/roles")));
}

#[tokio::test]
async fn each_identity_is_rate_limited_with_retry_after() {
    let server = secured(|s| {
        s.rate_limit_per_sec = 1;
        s.rate_limit_burst = 3;
    })
    .await;
    let first = token(&server, "first", &["config-reader"], json!({})).await;
    let second = token(&server, "second", &["config-reader"], json!({})).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = server
            .client
            .get(server.url("/api/v1/configs"))
            .bearer_auth(&first)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let (_, problem) = body_of(response).await;
            assert_eq!(problem["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&seconds));
    // Another identity has its own budget.
    assert_eq!(
        call(&server, Some(&second), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_roles_and_expire() {
    const SECRET: &str = "a-jwt-secret-that-is-at-least-32-bytes-long";
    let server = secured(|s| {
        s.jwt_hs256_secret = Some(SECRET.into());
        s.jwt_issuer = Some("https://idp.example".into());
    })
    .await;
    let jwt = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let exp = chrono::Utc::now().timestamp() + 600;
    let reader = jwt(
        json!({"sub": "svc-a", "roles": ["config-reader"], "exp": exp, "iss": "https://idp.example"}),
        SECRET,
    );
    assert_eq!(
        call(&server, Some(&reader), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
    let (status, _) = call(
        &server,
        Some(&reader),
        Method::PUT,
        "/api/v1/configs/x",
        Some(&config_body()),
    )
    .await;
    assert_eq!(status, 403);
    let admin = jwt(
        json!({"sub": "ci", "roles": ["config-admin"], "exp": exp, "iss": "https://idp.example"}),
        SECRET,
    );
    let (status, _) = call(
        &server,
        Some(&admin),
        Method::PUT,
        "/api/v1/configs/x",
        Some(&config_body()),
    )
    .await;
    assert_eq!(status, 201);
    let (_, audit) = call(
        &server,
        Some(&admin),
        Method::GET,
        "/api/v1/configs/x/audit",
        None,
    )
    .await;
    assert_eq!(audit["items"][0]["actor"], "jwt:ci");
    for bad in [
        jwt(
            json!({"sub": "svc-a", "roles": ["config-reader"], "exp": exp - 1200, "iss": "https://idp.example"}),
            SECRET,
        ),
        jwt(
            json!({"sub": "svc-a", "roles": ["config-reader"], "exp": exp, "iss": "https://idp.example"}),
            "another-secret-of-more-than-32-bytes!!",
        ),
        jwt(
            json!({"sub": "svc-a", "roles": ["config-reader"], "exp": exp, "iss": "https://evil.example"}),
            SECRET,
        ),
        jwt(
            json!({"sub": "svc-a", "roles": [], "exp": exp, "iss": "https://idp.example"}),
            SECRET,
        ),
        jwt(
            json!({"sub": "svc-a", "roles": ["config-reader"], "iss": "https://idp.example"}),
            SECRET,
        ),
    ] {
        assert_eq!(
            call(&server, Some(&bad), Method::GET, "/api/v1/configs", None)
                .await
                .0,
            401,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_first_start_writes_an_admin_token_file_readable_only_by_its_owner() {
    let server = TestServer::spawn_with(|s| s.no_auth = false).await;
    let path = server.db_path.parent().unwrap().join("admin-token");
    let text = std::fs::read_to_string(&path).expect("admin token file");
    let token = text.trim();
    assert!(token.starts_with("sc_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(
        call(&server, Some(token), Method::GET, "/api/v1/tokens", None)
            .await
            .0,
        200
    );
    // A restart finds the admin token and writes no new one.
    let server = server.restart_with(|s| s.no_auth = false).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    assert_eq!(
        call(&server, Some(token), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
}

/// `tests/fixtures/jwt-rs256-*.pem`: an RSA key pair made for this test only (openssl genrsa).
#[tokio::test]
async fn rs256_jwts_verify_with_the_configured_public_key_only() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let public = fixtures.join("jwt-rs256-public.pem");
    let server = secured(|s| s.jwt_rs256_public_key_file = Some(public.clone())).await;
    let private = std::fs::read(fixtures.join("jwt-rs256-private.pem")).unwrap();
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({"sub": "deployer", "roles": ["config-reader"], "exp": exp});
    let signed = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    assert_eq!(
        call(&server, Some(&signed), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
    // Algorithm confusion: HS256 "signed" with the public key as the secret is refused.
    let public_pem = std::fs::read(&public).unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_eq!(
        call(&server, Some(&forged), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn a_scoped_admin_cannot_manage_tokens_so_it_cannot_mint_an_unscoped_one() {
    let server = secured(|_| {}).await;
    let victim = token(&server, "victim", &["config-reader"], json!({})).await;
    let (_, tokens) = call(&server, Some(ADMIN), Method::GET, "/api/v1/tokens", None).await;
    let victim_id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "victim")
        .expect("the victim token is listed")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scopes = [
        json!({"configPrefixes": ["payments."]}),
        json!({"environments": ["staging"]}),
        json!({"services": ["payments"]}),
    ];
    for (n, scope) in scopes.iter().enumerate() {
        let scoped = token(
            &server,
            &format!("scoped-admin-{n}"),
            &["admin"],
            scope.clone(),
        )
        .await;
        let mint = json!({"name": format!("escalated-{n}"), "roles": ["admin"]});
        let attempts = [
            (Method::POST, "/api/v1/tokens".to_owned(), Some(mint)),
            (Method::GET, "/api/v1/tokens".to_owned(), None),
            (Method::DELETE, format!("/api/v1/tokens/{victim_id}"), None),
            (Method::GET, "/api/v1/audit/denied".to_owned(), None),
        ];
        for (method, path, body) in attempts {
            let (status, problem) =
                call(&server, Some(&scoped), method.clone(), &path, body.as_ref()).await;
            assert_eq!(status, 403, "{method} {path} with {scope}: {problem}");
            assert_eq!(problem["code"], "forbidden", "{problem}");
        }
    }
    let (_, tokens) = call(&server, Some(ADMIN), Method::GET, "/api/v1/tokens", None).await;
    let items = tokens["items"].as_array().unwrap();
    assert!(
        !items
            .iter()
            .any(|t| t["name"].as_str().unwrap().starts_with("escalated")),
        "no token was minted: {tokens}"
    );
    let victim_entry = items.iter().find(|t| t["name"] == "victim").unwrap();
    assert!(
        victim_entry.get("revokedAt").is_none_or(Value::is_null),
        "the victim token was not revoked: {victim_entry}"
    );
    assert_eq!(
        call(&server, Some(&victim), Method::GET, "/api/v1/configs", None)
            .await
            .0,
        200
    );
    let (_, denied) = call(
        &server,
        Some(ADMIN),
        Method::GET,
        "/api/v1/audit/denied?limit=500",
        None,
    )
    .await;
    let refusals = denied["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["actor"]
                .as_str()
                .unwrap_or("")
                .starts_with("token:scoped-admin")
        })
        .count();
    assert_eq!(refusals, 12, "every refusal is recorded once: {denied}");
}

#[tokio::test]
async fn an_environment_scoped_reader_sees_drift_only_of_its_environments() {
    let server = secured(|_| {}).await;
    let (status, _) = call(
        &server,
        Some(ADMIN),
        Method::PUT,
        "/api/v1/configs/payments.api",
        Some(&config_body()),
    )
    .await;
    assert_eq!(status, 201);
    for (environment, instance) in [("staging", "stg-1"), ("production", "prod-1")] {
        let (_, effective) = call(
            &server,
            Some(ADMIN),
            Method::GET,
            &format!("/api/v1/configs/payments.api/effective?environment={environment}"),
            None,
        )
        .await;
        let report = json!({"environment": environment, "instanceId": instance, "version": 1,
            "checksum": effective["checksum"]});
        let (status, body) = call(
            &server,
            Some(ADMIN),
            Method::POST,
            "/api/v1/configs/payments.api/applied",
            Some(&report),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let staging = token(
        &server,
        "staging-reader",
        &["config-reader"],
        json!({"environments": ["staging"]}),
    )
    .await;
    let get = |path: &'static str| {
        let (server, staging) = (&server, staging.clone());
        async move { call(server, Some(&staging), Method::GET, path, None).await }
    };
    let (status, problem) = get("/api/v1/configs/payments.api/drift").await;
    assert_eq!(status, 403, "every environment's instances: {problem}");
    let (status, _) = get("/api/v1/configs/payments.api/drift?environment=production").await;
    assert_eq!(status, 403);
    let (status, drift) = get("/api/v1/configs/payments.api/drift?environment=staging").await;
    assert_eq!(status, 200, "{drift}");
    assert!(drift.to_string().contains("stg-1"), "{drift}");
    assert!(!drift.to_string().contains("prod-1"), "{drift}");
    let (status, problem) = get("/api/v1/drift").await;
    assert_eq!(
        status, 403,
        "the report over every config and environment: {problem}"
    );
}

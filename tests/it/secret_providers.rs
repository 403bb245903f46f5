//! The remote secret providers against real servers: `vault:` against an OpenBao dev server,
//! `awssm:` against moto; failures, write-time refusals, nested references and cycles.

use std::time::Duration;

use serde_json::{Value, json};
use summit_config::settings::Settings;

use crate::common::binary::start_binary_with;
use crate::common::secret_servers::{
    AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET_ACCESS_KEY, BAO_TOKEN, ChildServer, free_port, moto,
    openbao,
};
use crate::common::{TestServer, meta};

const DB_V1: &str = "vault-db-password-v1-SECRET-3a7f";
const DB_V2: &str = "vault-db-password-v2-SECRET-8c2e";
const AWS_V1: &str = "awssm-password-v1-SECRET-61d0";
const AWS_V2: &str = "awssm-password-v2-SECRET-f4b9";
const AWS_TOKEN: &str = "awssm-plain-token-SECRET-0e5a";

fn vault_at(settings: &mut Settings, addr: String) {
    settings.vault_addr = Some(addr);
    settings.vault_token = Some(BAO_TOKEN.into());
}

fn awssm_at(settings: &mut Settings, endpoint: String) {
    settings.awssm_endpoint = Some(endpoint);
    settings.aws_region = Some(AWS_REGION.into());
    settings.aws_access_key_id = Some(AWS_ACCESS_KEY_ID.into());
    settings.aws_secret_access_key = Some(AWS_SECRET_ACCESS_KEY.into());
    settings.aws_session_token = None;
}

/// Whatever AWS variables the test process has, no `awssm:` provider.
fn no_awssm(settings: &mut Settings) {
    settings.aws_region = None;
    settings.aws_default_region = None;
    settings.aws_access_key_id = None;
    settings.aws_secret_access_key = None;
}

async fn put(server: &TestServer, id: &str, config: Value) {
    server
        .put_config(
            id,
            json!({"config": config, "metadata": meta("tester", "refs")}),
        )
        .await;
}

async fn resolved(server: &TestServer, id: &str) -> (u16, Value) {
    server
        .get_json(&format!(
            "/api/v1/configs/{id}/effective?resolveSecrets=true"
        ))
        .await
}

/// A problem about one reference: its code, pointer, provider and reference; and no config.
fn assert_problem(problem: &Value, code: &str, pointer: &str, provider: &str, reference: &str) {
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    assert_eq!(problem["provider"], provider, "{problem}");
    assert_eq!(problem["reference"], reference, "{problem}");
    assert!(problem.get("effectiveConfig").is_none(), "{problem}");
}

async fn vault_server(bao: &ChildServer) -> TestServer {
    let addr = bao.base.clone();
    TestServer::spawn_with(|s| vault_at(s, addr)).await
}

#[tokio::test]
async fn vault_references_resolve_a_field_the_data_object_and_a_pinned_version() {
    let Some(bao) = openbao().await else { return };
    bao.vault_put("app/db", json!({"password": DB_V1, "user": "app"}))
        .await;
    let version = bao
        .vault_put(
            "app/db",
            json!({"password": DB_V2, "user": "app", "port": 5432}),
        )
        .await;
    assert_eq!(version, 2);
    let server = vault_server(&bao).await;
    put(
        &server,
        "checkout",
        json!({
            "db": {"password": {"$secret": "vault:secret/app/db#password"},
                   "port": {"$secret": "vault:secret/app/db#port"}},
            "old": {"$secret": "vault:secret/app/db#password?version=1"},
            "whole": {"$secret": "vault:secret/app/db?version=1"},
            "plain": 1
        }),
    )
    .await;

    let (status, read) = resolved(&server, "checkout").await;
    assert_eq!(status, 200, "{read}");
    let effective = &read["effectiveConfig"];
    assert_eq!(effective["db"], json!({"password": DB_V2, "port": "5432"}));
    assert_eq!(effective["old"], json!(DB_V1));
    let whole: Value = serde_json::from_str(effective["whole"].as_str().unwrap()).unwrap();
    assert_eq!(whole, json!({"password": DB_V1, "user": "app"}));
    assert_eq!(effective["plain"], 1);

    // Values are kept for the cache TTL (60 s by default): a new version shows after it.
    bao.vault_put(
        "app/db",
        json!({"password": "v3", "user": "app", "port": 1}),
    )
    .await;
    let (_, again) = resolved(&server, "checkout").await;
    assert_eq!(again["effectiveConfig"]["db"]["password"], json!(DB_V2));
}

#[tokio::test]
async fn vault_references_to_a_missing_path_field_or_version_are_422_without_a_partial_config() {
    let Some(bao) = openbao().await else { return };
    bao.vault_put("app/db", json!({"password": DB_V1})).await;
    let server = vault_server(&bao).await;
    for (id, reference) in [
        ("no-path", "vault:secret/app/nothing-here#password"),
        ("no-field", "vault:secret/app/db#username"),
        ("no-version", "vault:secret/app/db#password?version=7"),
        ("no-mount", "vault:nomount/app/db#password"),
    ] {
        put(
            &server,
            id,
            json!({"ok": {"$secret": "vault:secret/app/db#password"},
                   "db": {"missing": {"$secret": reference}}}),
        )
        .await;
        let (status, problem) = resolved(&server, id).await;
        assert_eq!(status, 422, "{id}: {problem}");
        assert_problem(
            &problem,
            "secret_unresolved",
            "/db/missing",
            "vault",
            reference,
        );
        assert!(!problem.to_string().contains(DB_V1), "{problem}");
    }
}

#[tokio::test]
async fn awssm_references_resolve_the_current_and_previous_stage_a_version_and_a_field() {
    let Some(moto) = moto().await else { return };
    let first = moto
        .secrets_manager(
            "CreateSecret",
            json!({"Name": "app/db", "SecretString": json!({"password": AWS_V1}).to_string()}),
        )
        .await;
    moto.secrets_manager(
        "PutSecretValue",
        json!({"SecretId": "app/db", "SecretString": json!({"password": AWS_V2, "user": "app"}).to_string()}),
    )
    .await;
    moto.secrets_manager(
        "CreateSecret",
        json!({"Name": "app/token", "SecretString": AWS_TOKEN}),
    )
    .await;
    let first_version = first["VersionId"].as_str().unwrap();
    let endpoint = moto.base.clone();
    let server = TestServer::spawn_with(|s| awssm_at(s, endpoint)).await;
    put(
        &server,
        "billing",
        json!({
            "current": {"$secret": "awssm:app/db#password"},
            "previous": {"$secret": "awssm:app/db#password?stage=AWSPREVIOUS"},
            "pinned": {"$secret": format!("awssm:app/db#password?versionId={first_version}")},
            "token": {"$secret": "awssm:app/token"},
            "whole": {"$secret": "awssm:app/db"}
        }),
    )
    .await;

    let (status, read) = resolved(&server, "billing").await;
    assert_eq!(status, 200, "{read}");
    let effective = &read["effectiveConfig"];
    assert_eq!(effective["current"], json!(AWS_V2));
    assert_eq!(effective["previous"], json!(AWS_V1));
    assert_eq!(effective["pinned"], json!(AWS_V1));
    assert_eq!(effective["token"], json!(AWS_TOKEN));
    let whole: Value = serde_json::from_str(effective["whole"].as_str().unwrap()).unwrap();
    assert_eq!(whole, json!({"password": AWS_V2, "user": "app"}));

    for (id, reference) in [
        ("no-secret", "awssm:app/none#password"),
        ("no-field", "awssm:app/db#port"),
        ("not-json", "awssm:app/token#password"),
        ("no-stage", "awssm:app/db?stage=NOPE"),
    ] {
        put(&server, id, json!({"x": [{"$secret": reference}]})).await;
        let (status, problem) = resolved(&server, id).await;
        assert_eq!(status, 422, "{id}: {problem}");
        assert_problem(&problem, "secret_unresolved", "/x/0", "awssm", reference);
    }
}

#[tokio::test]
async fn unreachable_or_silent_providers_are_502_naming_the_reference_and_nothing_resolved() {
    // Nothing listens on the first port; the second accepts connections and never answers.
    let closed = free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let server = TestServer::spawn_with(|s| {
        vault_at(s, format!("http://127.0.0.1:{closed}"));
        awssm_at(s, format!("http://{silent_addr}"));
        s.secret_timeout_ms = 300;
    })
    .await;
    put(
        &server,
        "down",
        json!({"env": {"$secret": "env:IT_DB_PASSWORD"},
               "db": {"$secret": "vault:secret/app/db#password"}}),
    )
    .await;
    put(
        &server,
        "silent",
        json!({"env": {"$secret": "env:IT_DB_PASSWORD"},
               "api": {"key": {"$secret": "awssm:app/api#key"}}}),
    )
    .await;

    let started = std::time::Instant::now();
    for (id, pointer, provider, reference) in [
        ("down", "/db", "vault", "vault:secret/app/db#password"),
        ("silent", "/api/key", "awssm", "awssm:app/api#key"),
    ] {
        let (status, problem) = resolved(&server, id).await;
        assert_eq!(status, 502, "{id}: {problem}");
        assert_problem(
            &problem,
            "secret_provider_failed",
            pointer,
            provider,
            reference,
        );
        // IT_DB_PASSWORD's value (common::env) resolved fine, and is not sent either.
        assert!(!problem.to_string().contains("hunter2"), "{problem}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

#[tokio::test]
async fn references_to_unconfigured_providers_or_malformed_ones_are_refused_when_written() {
    let server = TestServer::spawn_with(no_awssm).await;
    for (reference, pointer) in [
        ("vault:secret/app/db#password", "/config/a/0"),
        ("awssm:app/db#password", "/config/a/0"),
    ] {
        let body = json!({"config": {"a": [{"$secret": reference}]}, "metadata": meta("t", "m")});
        let (status, problem) = server.put_json("/api/v1/configs/refused", &body).await;
        assert_eq!(status, 400, "{reference}: {problem}");
        assert_eq!(problem["field"], pointer, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("unknown secret provider"),
            "{problem}"
        );
    }

    let configured = TestServer::spawn_with(|s| {
        vault_at(s, "http://127.0.0.1:9".into());
        awssm_at(s, "http://127.0.0.1:9".into());
    })
    .await;
    for reference in [
        "vault:secret",
        "vault:secret/app/db?stage=AWSPREVIOUS",
        "vault:secret/app/db?version=0",
        "vault:secret/app/db?version=2#password",
        "awssm:app/db?version=2",
        "awssm:app db",
        "awssm:app/db#",
    ] {
        let body = json!({"config": {"db": {"$secret": reference}}, "metadata": meta("t", "m")});
        let (status, problem) = configured
            .put_json("/api/v1/configs/malformed", &body)
            .await;
        assert_eq!(status, 400, "{reference}: {problem}");
        assert_eq!(problem["field"], "/config/db", "{problem}");
    }
    let (status, _) = configured.get_json("/api/v1/configs/malformed").await;
    assert_eq!(status, 404, "nothing was written");
}

#[tokio::test]
async fn references_inside_secret_values_are_resolved_in_turn_and_cycles_are_refused() {
    let Some(bao) = openbao().await else { return };
    bao.vault_put(
        "nested",
        json!({"password": DB_V1, "next": {"$secret": "store:loop"}}),
    )
    .await;
    let server = vault_server(&bao).await;
    for (name, value) in [
        (
            "db",
            json!({"user": "app", "password": {"$secret": "vault:secret/nested#password"}}),
        ),
        ("loop", json!({"$secret": "store:loop2"})),
        ("loop2", json!({"$secret": "store:loop"})),
        ("escape", json!({"$secret": "vault:secret/nested#next"})),
    ] {
        let (status, created) = server
            .put_json(
                &format!("/api/v1/secrets/{name}"),
                &json!({"value": value, "metadata": meta("sam", "set")}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
    }
    put(
        &server,
        "nested",
        json!({"db": {"$secret": "store:db"}, "password": {"$secret": "store:db#password"}}),
    )
    .await;
    let (status, read) = resolved(&server, "nested").await;
    assert_eq!(status, 200, "{read}");
    let effective = &read["effectiveConfig"];
    assert_eq!(effective["password"], json!(DB_V1));
    let db: Value = serde_json::from_str(effective["db"].as_str().unwrap()).unwrap();
    assert_eq!(db, json!({"user": "app", "password": DB_V1}));

    put(
        &server,
        "cycle",
        json!({"a": {"b": {"$secret": "store:loop"}}}),
    )
    .await;
    let (status, problem) = resolved(&server, "cycle").await;
    assert_eq!(status, 422, "{problem}");
    assert_problem(&problem, "secret_unresolved", "/a/b", "store", "store:loop");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("cycle"), "{detail}");
    assert!(detail.contains("store:loop2"), "{detail}");

    // A value kept in Vault is written outside summit-config's access control: it may not
    // pull the built-in store's (or the server's environment's) values into a config.
    put(&server, "escape", json!({"x": {"$secret": "store:escape"}})).await;
    let (status, problem) = resolved(&server, "escape").await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("may reference only vault:"), "{detail}");
}

#[tokio::test]
async fn remote_values_and_credentials_never_reach_the_log_or_a_problem() {
    const SESSION_TOKEN: &str = "it-aws-session-token-SECRET-77aa";
    let (Some(bao), Some(moto)) = (openbao().await, moto().await) else {
        return;
    };
    bao.vault_put("app/db", json!({"password": DB_V1})).await;
    moto.secrets_manager(
        "CreateSecret",
        json!({"Name": "app/db", "SecretString": json!({"password": AWS_V1}).to_string()}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_binary_with(
        &dir.path().join("leaks.db"),
        &[
            ("SUMMIT_NO_AUTH", "true"),
            ("SUMMIT_LOG", "trace"),
            ("SUMMIT_VAULT_ADDR", &bao.base),
            ("SUMMIT_VAULT_TOKEN", BAO_TOKEN),
            ("SUMMIT_AWSSM_ENDPOINT", &moto.base),
            ("AWS_REGION", AWS_REGION),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let mut answers = Vec::new();
    for (id, config) in [
        (
            "ok",
            json!({"v": {"$secret": "vault:secret/app/db#password"},
                   "a": {"$secret": "awssm:app/db#password"}}),
        ),
        (
            "missing",
            json!({"v": {"$secret": "vault:secret/app/db#password"},
                   "a": {"$secret": "awssm:app/db#nope"}}),
        ),
        (
            "no-path",
            json!({"v": {"$secret": "vault:secret/app/db"},
                   "x": {"$secret": "vault:secret/app/none"}}),
        ),
    ] {
        let body = json!({"config": config, "metadata": meta("ci", "leaks")});
        let response = client
            .put(url(&format!("/api/v1/configs/{id}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let read = client
            .get(url(&format!(
                "/api/v1/configs/{id}/effective?resolveSecrets=true"
            )))
            .send()
            .await
            .unwrap();
        answers.push((read.status().as_u16(), read.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 200, "{}", answers[0].1);
    assert!(answers[0].1.contains(DB_V1) && answers[0].1.contains(AWS_V1));
    for (status, problem) in &answers[1..] {
        assert_eq!(*status, 422, "{problem}");
        assert!(
            !problem.contains(DB_V1) && !problem.contains(AWS_V1),
            "{problem}"
        );
    }

    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("secret providers"),
        "the start-up line is logged"
    );
    for secret in [
        DB_V1,
        AWS_V1,
        BAO_TOKEN,
        AWS_SECRET_ACCESS_KEY,
        SESSION_TOKEN,
    ] {
        assert!(!logs.contains(secret), "{secret} is in the log");
    }
}

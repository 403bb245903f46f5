//! The built-in secret store over REST with access control on: values go in sealed, come out
//! only to `secrets-admin` through an audited read, resolve in configs as `store:` references,
//! and are never in the database file in clear.

use reqwest::Method;
use serde_json::{Value, json};

use crate::approvals::call;
use crate::common::{TestServer, meta};

const ADMIN: &str = "admin-token-for-the-secret-store-tests-0123";
const FIRST: &str = "first-SECRET-value-7f3a9c";
const SECOND: &str = "second-SECRET-value-4b1d2e";
const FIELD: &str = "object-field-SECRET-9e8d7c";

struct Team {
    server: TestServer,
    sam: String,
    carol: String,
    reader: String,
}

async fn team() -> Team {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
    })
    .await;
    let mut tokens = Vec::new();
    for (name, roles) in [
        ("sam", json!(["secrets-admin"])),
        ("carol", json!(["config-admin"])),
        ("reader", json!(["config-reader"])),
    ] {
        let (status, created) = call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "roles": roles})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(created["tokenText"].as_str().unwrap().to_owned());
    }
    let [sam, carol, reader] = tokens.try_into().unwrap();
    Team {
        server,
        sam,
        carol,
        reader,
    }
}

impl Team {
    async fn put(&self, token: &str, name: &str, value: Value) -> (u16, Value) {
        call(
            &self.server,
            token,
            Method::PUT,
            &format!("/api/v1/secrets/{name}"),
            Some(json!({"value": value, "metadata": meta("sam", "set")})),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        call(&self.server, token, Method::GET, path, None).await
    }
}

#[tokio::test]
async fn secrets_are_sealed_versioned_and_read_only_by_secrets_admins_with_an_audit_record() {
    let team = team().await;

    let (status, created) = team.put(&team.sam, "db-password", json!(FIRST)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["name"], &created["version"]),
        (&json!("db-password"), &json!(1))
    );
    assert!(!created.to_string().contains(FIRST), "{created}");
    let (status, _) = team.put(&team.carol, "db-password", json!("nope")).await;
    assert_eq!(status, 403, "a config-admin does not manage secrets");
    let (status, _) = team.get(&team.reader, "/api/v1/secrets").await;
    assert_eq!(status, 403, "a reader does not list secrets");
    let (status, problem) = team.put(&team.sam, "db-password", json!(42)).await;
    assert_eq!(
        (status, &problem["field"]),
        (400, &json!("/value")),
        "{problem}"
    );
    let (status, _) = team.put(&team.sam, "bad name!", json!("x")).await;
    assert_eq!(status, 400);

    let (status, created) = team.put(&team.sam, "db-password", json!(SECOND)).await;
    assert_eq!((status, &created["version"]), (201, &json!(2)));

    let (status, listed) = team.get(&team.sam, "/api/v1/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["name"], "db-password");
    assert_eq!(listed["items"][0]["version"], 2);
    let (status, described) = team.get(&team.sam, "/api/v1/secrets/db-password").await;
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["versions"][0]["stages"], json!(["current"]));
    // Without a rotation policy there is no grace period: the replaced value is served no more.
    assert_eq!(described["versions"][1]["stages"], json!([]));
    for shown in [&listed, &described] {
        let text = shown.to_string();
        assert!(!text.contains(FIRST) && !text.contains(SECOND), "{text}");
    }

    let value = |query: &'static str| {
        let team = &team;
        async move {
            team.get(
                &team.sam,
                &format!("/api/v1/secrets/db-password/value{query}"),
            )
            .await
        }
    };
    let (status, current) = value("").await;
    assert_eq!(
        (status, &current["value"], &current["version"]),
        (200, &json!(SECOND), &json!(2))
    );
    assert_eq!(value("?stage=previous").await.0, 404);
    let (_, first) = value("?version=1").await;
    assert_eq!(first["value"], json!(FIRST));
    assert_eq!(value("?version=9").await.0, 404);
    assert_eq!(value("?stage=pending-ish").await.0, 400);
    assert_eq!(value("?stage=current&version=1").await.0, 400);
    let (status, _) = team
        .get(&team.carol, "/api/v1/secrets/db-password/value")
        .await;
    assert_eq!(status, 403, "a config-admin reads no value");

    // Two values were read: two audit records, none carrying a value.
    let (status, audit) = team.get(ADMIN, "/api/v1/audit?limit=100").await;
    assert_eq!(status, 200, "{audit}");
    let reads: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "secret.read")
        .collect();
    assert_eq!(reads.len(), 2, "{audit}");
    assert!(reads.iter().all(|r| r["actor"] == "token:sam"), "{audit}");
    assert!(
        reads.iter().all(|r| r["secretName"] == "db-password"),
        "{audit}"
    );
    let text = audit.to_string();
    assert!(!text.contains(FIRST) && !text.contains(SECOND), "{text}");

    // Nothing in the database files in clear.
    let dir = team.server.db_path.parent().unwrap().to_owned();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for value in [FIRST, SECOND] {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{value} stored in clear"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }

    // Deleted: history stays for the audit, the secret is gone.
    let (status, _) = call(
        &team.server,
        &team.sam,
        Method::DELETE,
        "/api/v1/secrets/db-password",
        Some(json!({"metadata": meta("sam", "retire")})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        team.get(&team.sam, "/api/v1/secrets/db-password").await.0,
        404
    );
    assert_eq!(
        team.get(&team.sam, "/api/v1/secrets/db-password/value")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn store_references_resolve_in_effective_configs_and_survive_a_restart() {
    let team = team().await;
    team.put(&team.sam, "db-password", json!(FIRST)).await;
    team.put(&team.sam, "api", json!({"user": "svc", "token": FIELD}))
        .await;
    let (status, written) = call(
        &team.server,
        &team.carol,
        Method::PUT,
        "/api/v1/configs/app",
        Some(
            json!({"config": {"db": {"password": {"$secret": "store:db-password"}},
                               "api": {"$secret": "store:api#token"}},
                    "metadata": meta("carol", "use secrets")}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{written}");
    let (status, problem) = call(
        &team.server,
        &team.carol,
        Method::PUT,
        "/api/v1/configs/bad",
        Some(
            json!({"config": {"x": {"$secret": "store:db-password?stage=pending"}},
                    "metadata": meta("carol", "bad")}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{problem}");

    let resolved = "/api/v1/configs/app/effective?environment=production&resolveSecrets=true";
    let (status, effective) = team.get(&team.sam, resolved).await;
    assert_eq!(status, 200, "{effective}");
    assert_eq!(effective["effectiveConfig"]["db"]["password"], json!(FIRST));
    assert_eq!(effective["effectiveConfig"]["api"], json!(FIELD));
    let (_, plain) = team
        .get(
            &team.reader,
            "/api/v1/configs/app/effective?environment=production",
        )
        .await;
    assert_eq!(
        plain["effectiveConfig"]["db"]["password"],
        json!({"$secret": "store:db-password"})
    );

    // A new version is what references resolve to, at once.
    team.put(&team.sam, "db-password", json!(SECOND)).await;
    let (_, effective) = team.get(&team.sam, resolved).await;
    assert_eq!(
        effective["effectiveConfig"]["db"]["password"],
        json!(SECOND)
    );

    // The key file outlives the process: a restarted server opens what it sealed.
    let team = Team {
        server: team.server.restart().await,
        ..team
    };
    let (status, effective) = team.get(&team.sam, resolved).await;
    assert_eq!(
        (status, &effective["effectiveConfig"]["db"]["password"]),
        (200, &json!(SECOND))
    );
    let (_, value) = team.get(&team.sam, "/api/v1/secrets/api/value").await;
    assert_eq!(value["value"], json!({"user": "svc", "token": FIELD}));

    // A deleted secret no longer resolves: 422 naming the reference, never a value.
    let (status, _) = call(
        &team.server,
        &team.sam,
        Method::DELETE,
        "/api/v1/secrets/db-password",
        Some(json!({"metadata": meta("sam", "retire")})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = team.get(&team.sam, resolved).await;
    assert_eq!(
        (status, &problem["code"]),
        (422, &json!("secret_unresolved")),
        "{problem}"
    );
    assert!(!problem.to_string().contains(SECOND), "{problem}");
}

#[tokio::test]
async fn rewrapping_under_a_new_key_loses_nothing_and_retires_the_old_key_file() {
    let team = team().await;
    team.put(&team.sam, "alpha", json!(FIRST)).await;
    team.put(&team.sam, "alpha", json!(SECOND)).await;
    team.put(&team.sam, "beta", json!({"token": FIELD})).await;
    let data = team.server.db_path.parent().unwrap().to_owned();
    let (old, new) = (data.join("old-key"), data.join("new-key"));
    let Team {
        server,
        sam,
        carol,
        reader,
    } = team;

    // The operator moves the key aside and starts with a new one, keeping the old one readable.
    let mut server = server;
    server.stop().await;
    std::fs::rename(data.join("secret-key"), &old).unwrap();
    let (new_file, old_file) = (new.clone(), old.clone());
    let server = server
        .restart_with(move |s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            s.secret_key_file = Some(new_file);
            s.secret_previous_key_files = vec![old_file];
        })
        .await;
    let team = Team {
        server,
        sam,
        carol,
        reader,
    };
    let (status, value) = team
        .get(&team.sam, "/api/v1/secrets/alpha/value?version=1")
        .await;
    assert_eq!(
        (status, &value["value"]),
        (200, &json!(FIRST)),
        "the old key still opens"
    );
    let (status, problem) = call(
        &team.server,
        &team.carol,
        Method::POST,
        "/api/v1/secret-keys/rewrap",
        None,
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    let (status, report) = call(
        &team.server,
        &team.sam,
        Method::POST,
        "/api/v1/secret-keys/rewrap",
        None,
    )
    .await;
    assert_eq!(
        (status, &report["rewrapped"], &report["unchanged"]),
        (200, &json!(3), &json!(0)),
        "{report}"
    );
    let (_, again) = call(
        &team.server,
        &team.sam,
        Method::POST,
        "/api/v1/secret-keys/rewrap",
        None,
    )
    .await;
    assert_eq!(
        (&again["rewrapped"], &again["unchanged"]),
        (&json!(0), &json!(3)),
        "{again}"
    );
    let (_, described) = team.get(&team.sam, "/api/v1/secrets/alpha").await;
    assert!(
        described["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["keyId"] == report["keyId"]),
        "{described}"
    );

    // Without the old key file everything still opens.
    let Team {
        server,
        sam,
        carol,
        reader,
    } = team;
    let server = server
        .restart_with(move |s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            s.secret_key_file = Some(new);
        })
        .await;
    let team = Team {
        server,
        sam,
        carol,
        reader,
    };
    for (path, expected) in [
        ("/api/v1/secrets/alpha/value?version=1", json!(FIRST)),
        ("/api/v1/secrets/alpha/value", json!(SECOND)),
        ("/api/v1/secrets/beta/value", json!({"token": FIELD})),
    ] {
        let (status, value) = team.get(&team.sam, path).await;
        assert_eq!(
            (status, &value["value"]),
            (200, &expected),
            "{path}: {value}"
        );
    }
    let (_, audit) = team.get(ADMIN, "/api/v1/audit?limit=100").await;
    let rewraps = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "secret.rewrap")
        .count();
    assert_eq!(rewraps, 3, "{audit}");
}

#[tokio::test]
async fn a_prefix_scoped_secrets_admin_may_rewrap_its_secrets_but_not_webhook_secrets() {
    let server = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        s.webhook_allow = "127.0.0.1".into();
    })
    .await;
    let mut tokens = Vec::new();
    for (name, scopes) in [
        ("sam", json!({})),
        ("pat", json!({"configPrefixes": ["app-"]})),
    ] {
        let (status, created) = call(
            &server,
            ADMIN,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "roles": ["secrets-admin"], "scopes": scopes})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(created["tokenText"].as_str().unwrap().to_owned());
    }
    let [sam, pat] = tokens.try_into().unwrap();
    let (status, put) = call(
        &server,
        &pat,
        Method::PUT,
        "/api/v1/secrets/app-key",
        Some(json!({"value": FIRST, "metadata": meta("pat", "set")})),
    )
    .await;
    assert_eq!(status, 201, "{put}");
    let rewrap = |token: String| {
        let server = &server;
        async move {
            call(
                server,
                &token,
                Method::POST,
                "/api/v1/secret-keys/rewrap",
                None,
            )
            .await
        }
    };
    let (status, report) = rewrap(pat.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["unchanged"], json!(1), "{report}");

    // A webhook's secrets belong to no id prefix: with one present, the scoped admin is
    // refused before anything is sealed again.
    let (status, webhook) = call(
        &server,
        ADMIN,
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["flag.updated"]})),
    )
    .await;
    assert_eq!(status, 201, "{webhook}");
    let (status, problem) = rewrap(pat.clone()).await;
    assert_eq!(status, 403, "{problem}");
    let (status, report) = rewrap(sam.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["unchanged"], &report["webhookSecretsUnchanged"]),
        (&json!(1), &json!(1)),
        "{report}"
    );
}

/// A stored secret resolves in a config only for a reader whose id scope reaches the secret,
/// as reading its value directly requires: a token scoped to `payments.` that may write
/// configs and resolve secrets cannot read `billing.key` by referencing it, directly or
/// through a secret of its own that refers on to it.
#[tokio::test]
async fn a_scoped_reader_resolves_only_the_stored_secrets_its_scope_reaches() {
    let team = team().await;
    for (name, value) in [
        ("billing.key", "billing-SECRET-0a1b2c"),
        ("payments.key", FIRST),
    ] {
        let (status, created) = team.put(ADMIN, name, json!(value)).await;
        assert_eq!(status, 201, "{created}");
    }
    let (status, created) = call(
        &team.server,
        ADMIN,
        Method::POST,
        "/api/v1/tokens",
        Some(
            json!({"name": "payments-ops", "roles": ["config-admin", "secrets-admin"],
            "scopes": {"configPrefixes": ["payments."]}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let scoped = created["tokenText"].as_str().unwrap().to_owned();
    let (status, created) = team
        .put(
            &scoped,
            "payments.chain",
            json!({"$secret": "store:billing.key"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    for (id, reference) in [
        ("payments.own", "store:payments.key"),
        ("payments.leak", "store:billing.key"),
        ("payments.chained", "store:payments.chain"),
    ] {
        let body = json!({"config": {"password": {"$secret": reference}},
            "metadata": meta("payments-ops", "reference")});
        let (status, written) = call(
            &team.server,
            &scoped,
            Method::PUT,
            &format!("/api/v1/configs/{id}"),
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{written}");
    }
    let resolved = |id: &str| format!("/api/v1/configs/{id}/effective?resolveSecrets=true");
    let (status, own) = team.get(&scoped, &resolved("payments.own")).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["effectiveConfig"]["password"], json!(FIRST));
    for id in ["payments.leak", "payments.chained"] {
        let (status, refused) = team.get(&scoped, &resolved(id)).await;
        assert_eq!(status, 403, "{id}: {refused}");
        assert!(!refused.to_string().contains("billing-SECRET"), "{refused}");
        let (status, _) = team
            .get(&scoped, &format!("/api/v1/configs/{id}/effective"))
            .await;
        assert_eq!(status, 200, "{id} unresolved is the caller's to read");
    }
    let (status, direct) = team.get(&scoped, "/api/v1/secrets/billing.key/value").await;
    assert_eq!(status, 403, "{direct}");
    let (status, chained) = team.get(ADMIN, &resolved("payments.chained")).await;
    assert_eq!(status, 200, "{chained}");
    assert_eq!(
        chained["effectiveConfig"]["password"],
        json!("billing-SECRET-0a1b2c")
    );
}

#[tokio::test]
async fn a_lost_key_file_stops_the_start_instead_of_sealing_new_values_under_another_key() {
    let team = team().await;
    let (status, created) = team.put(&team.sam, "alpha", json!(FIRST)).await;
    assert_eq!(status, 201, "{created}");
    let Team { mut server, .. } = team;
    server.stop().await;
    let data = server.db_path.parent().unwrap().to_owned();
    let key_file = data.join("secret-key");
    let kept = data.join("key-kept-aside");
    std::fs::rename(&key_file, &kept).unwrap();

    // A volume that was not mounted: the server refuses to start and creates no key.
    let settings = || {
        let mut settings = summit_config::settings::Settings::for_tests(format!(
            "sqlite://{}",
            server.db_path.display()
        ));
        settings.no_auth = false;
        settings.admin_token = Some(ADMIN.into());
        settings
    };
    let refused = summit_config::app::App::build(settings()).await;
    let error = format!("{:#}", refused.err().expect("the start is refused"));
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains(&key_file.display().to_string()), "{error}");
    assert!(!key_file.exists(), "no new key was created");

    // Moving to a new key while naming the old one is the documented rotation: it starts.
    let mut rotating = settings();
    rotating.secret_previous_key_files = vec![kept.clone()];
    let app = summit_config::app::App::build(rotating).await.unwrap();
    drop(app);
    assert!(key_file.exists(), "the new key was created");

    // The value sealed under the old key still opens with it named.
    let server = server
        .restart_with(move |s| {
            s.no_auth = false;
            s.admin_token = Some(ADMIN.into());
            s.secret_previous_key_files = vec![kept];
        })
        .await;
    let (status, value) = call(
        &server,
        ADMIN,
        Method::GET,
        "/api/v1/secrets/alpha/value",
        None,
    )
    .await;
    assert_eq!((status, &value["value"]), (200, &json!(FIRST)), "{value}");
}

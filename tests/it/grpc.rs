//! The gRPC surface (`summit.config.v1.ConfigService`, health, reflection) end to end, through
//! the generated clients against the real server on port 0 with its own SQLite file; results
//! are compared with what REST answers for the same data.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use summit_config::api::grpc::pb::watch_event::Event;
use summit_config::app::App;
use summit_config::settings::Settings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// Longest wait for any one step, so a missing answer fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(10);
/// How long silence must last to count as "nothing more was sent".
const QUIET: Duration = Duration::from_millis(300);

type Client = ConfigServiceClient<Channel>;
type Events = Streaming<pb::WatchEvent>;

/// Awaits `future` for at most `STEP`.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?}: {what}"))
}

// ---- harness ---------------------------------------------------------------------------------

/// The real server (REST and gRPC) on port 0 with a fresh SQLite file.
struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    rest: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Kept last so the directory outlives the server.
    _dir: tempfile::TempDir,
}

impl Server {
    async fn spawn() -> Server {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(tune: impl FnOnce(&mut Settings)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("summit-config.db");
        let mut settings = Settings::for_tests(format!("sqlite://{}", path.display()));
        tune(&mut settings);
        let app = within("building the app", App::build(settings))
            .await
            .expect("app builds");
        let (grpc, http) = (app.grpc_addr(), app.http_addr());
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        Server {
            grpc,
            http,
            rest: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            _dir: dir,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("http://{}", self.grpc)).expect("valid endpoint")
    }

    async fn connect(&self, endpoint: Endpoint) -> Channel {
        within("connecting to gRPC", endpoint.connect())
            .await
            .expect("gRPC connects")
    }

    /// A new HTTP/2 connection.
    async fn channel(&self) -> Channel {
        self.connect(self.endpoint()).await
    }

    async fn client(&self) -> Client {
        ConfigServiceClient::new(self.channel().await)
    }

    async fn rest_get(&self, path: &str) -> (u16, Value) {
        let request = self.rest.get(format!("http://{}{path}", self.http)).send();
        body_of(within(path, request).await.expect("REST request")).await
    }

    async fn rest_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self
            .rest
            .post(format!("http://{}{path}", self.http))
            .json(body)
            .send();
        body_of(within(path, request).await.expect("REST request")).await
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            within("server shutdown", handle)
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn body_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = within("REST body", response.text()).await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

// ---- request builders and readers --------------------------------------------------------------

fn meta(actor: &str, message: &str) -> Option<pb::Metadata> {
    Some(pb::Metadata {
        actor: actor.into(),
        message: Some(message.into()),
    })
}

fn doc(config: Value) -> pb::ConfigDocument {
    pb::ConfigDocument {
        config_json: config.to_string(),
        ..Default::default()
    }
}

fn put_request(id: &str, document: pb::ConfigDocument) -> pb::PutConfigRequest {
    pb::PutConfigRequest {
        config_id: id.into(),
        document: Some(document),
        metadata: meta("alice", &format!("write {id}")),
        expected_version: None,
    }
}

async fn put_doc(
    client: &mut Client,
    id: &str,
    document: pb::ConfigDocument,
) -> pb::VersionCreated {
    within(
        &format!("PutConfig {id}"),
        client.put_config(put_request(id, document)),
    )
    .await
    .unwrap_or_else(|status| panic!("PutConfig {id}: {status:?}"))
    .into_inner()
}

async fn put(client: &mut Client, id: &str, config: Value) -> pb::VersionCreated {
    put_doc(client, id, doc(config)).await
}

/// Opens a watch stream; panics on an error status.
async fn watch(client: &mut Client, request: pb::WatchRequest) -> Events {
    within("opening a watch", client.watch(request))
        .await
        .unwrap_or_else(|status| panic!("Watch: {status:?}"))
        .into_inner()
}

/// The next event that is not a heartbeat; panics if the stream fails or ends.
async fn next_event(stream: &mut Events) -> pb::WatchEvent {
    loop {
        let event = within("the next watch event", stream.message())
            .await
            .unwrap_or_else(|status| panic!("watch stream failed: {status:?}"))
            .expect("watch stream ended early");
        if !matches!(event.event, Some(Event::Heartbeat(_))) {
            return event;
        }
    }
}

fn change_of(event: &pb::WatchEvent) -> pb::ChangeEvent {
    match &event.event {
        Some(Event::Change(change)) => change.clone(),
        other => panic!("expected a change, got {other:?}"),
    }
}

fn snapshot_of(event: &pb::WatchEvent) -> pb::ChangeEvent {
    match &event.event {
        Some(Event::Snapshot(snapshot)) => snapshot.clone(),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

async fn next_change(stream: &mut Events) -> pb::ChangeEvent {
    change_of(&next_event(stream).await)
}

/// Reads `n` snapshots, keyed by config id.
async fn snapshots(stream: &mut Events, n: usize) -> BTreeMap<String, pb::WatchEvent> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let event = next_event(stream).await;
        let id = snapshot_of(&event).config_id;
        assert!(
            out.insert(id.clone(), event).is_none(),
            "two snapshots of {id}"
        );
    }
    out
}

/// Nothing but heartbeats arrives for `QUIET`.
async fn assert_quiet(stream: &mut Events, what: &str) {
    let deadline = tokio::time::Instant::now() + QUIET;
    while let Ok(item) = tokio::time::timeout_at(deadline, stream.message()).await {
        match item {
            Ok(Some(pb::WatchEvent {
                event: Some(Event::Heartbeat(_)),
                ..
            })) => {}
            other => panic!("{what}: expected nothing more, got {other:?}"),
        }
    }
}

/// The refused writes left nothing behind.
async fn assert_no_configs(client: &mut Client) {
    let listed = within(
        "ListConfigs",
        client.list_configs(pb::ListConfigsRequest::default()),
    )
    .await
    .expect("ListConfigs")
    .into_inner();
    assert!(listed.items.is_empty(), "{:?}", listed.items);
}

/// The value of a metadata entry of an error status.
fn md(status: &Status, key: &str) -> String {
    status
        .metadata()
        .get(key)
        .unwrap_or_else(|| panic!("status has no {key}: {status:?}"))
        .to_str()
        .expect("ASCII metadata")
        .to_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// An empty `*_json` field stands for an absent value.
fn json_or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        json(text)
    }
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
        .with_timezone(&Utc)
}

fn instant_of(value: &Value) -> DateTime<Utc> {
    instant(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
}

/// A key inside and one outside the 10% canary of `config_id`.
fn canary_keys(config_id: &str) -> (String, String) {
    use summit_config::core::rollout::{BasisPoints, bucket, canary_namespace};
    let ten = BasisPoints::from_percent(10.0, "trafficPercent").expect("10%");
    let ns = canary_namespace(config_id);
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let inside = keys.iter().find(|k| ten.includes(bucket(&ns, k)));
    let outside = keys.iter().find(|k| !ten.includes(bucket(&ns, k)));
    (
        inside.expect("a key inside").clone(),
        outside.expect("a key outside").clone(),
    )
}

fn timeout_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"timeout": {"type": "integer", "minimum": 1, "maximum": 60}},
        "required": ["timeout"]
    })
}

/// Base, a production override and a 10% production canary.
fn checkout_doc(timeout: u64) -> pb::ConfigDocument {
    pb::ConfigDocument {
        config_json: json!({"timeout": timeout, "color": "blue"}).to_string(),
        overrides_json: json!({"production": {"timeout": 10}}).to_string(),
        canary_json: json!({
            "environment": "production",
            "trafficPercent": 10,
            "config": {"timeout": 5},
            "startAt": "2026-01-01T00:00:00Z"
        })
        .to_string(),
        ab_test_json: String::new(),
    }
}

// ---- comparison with REST ----------------------------------------------------------------------

fn assert_version_matches_rest(version: &pb::ConfigVersion, rest: &Value) {
    assert_eq!(rest["configId"], version.config_id, "{rest}");
    assert_eq!(rest["version"], version.version, "{rest}");
    let document = version.document.as_ref().expect("document");
    assert_eq!(json(&document.config_json), rest["config"]);
    assert_eq!(json_or_null(&document.overrides_json), rest["overrides"]);
    assert_eq!(json_or_null(&document.canary_json), rest["canary"]);
    assert_eq!(json_or_null(&document.ab_test_json), rest["abTest"]);
    let metadata = version.metadata.as_ref().expect("metadata");
    assert_eq!(rest["metadata"]["actor"], metadata.actor);
    assert_eq!(
        rest["metadata"]["message"].as_str(),
        metadata.message.as_deref()
    );
    assert_eq!(rest["checksum"], version.checksum);
    assert_eq!(instant(&version.created_at), instant_of(&rest["createdAt"]));
    assert_eq!(rest["rollbackOf"].as_u64(), version.rollback_of);
}

fn assert_effective_matches_rest(effective: &pb::EffectiveConfig, rest: &Value) {
    assert_eq!(rest["configId"], effective.config_id, "{rest}");
    assert_eq!(rest["version"], effective.version, "{rest}");
    assert_eq!(
        rest["environment"].as_str().unwrap_or_default(),
        effective.environment
    );
    assert_eq!(
        json(&effective.effective_config_json),
        rest["effectiveConfig"]
    );
    assert_eq!(rest["checksum"], effective.checksum);
    let assignment = effective.assignment.as_ref().expect("assignment");
    assert_eq!(rest["assignment"]["canary"], assignment.canary);
    assert_eq!(
        rest["assignment"]["variant"].as_str().unwrap_or_default(),
        assignment.variant
    );
    assert!(!effective.stale);
}

fn assert_summary_matches_rest(summary: Option<&pb::DriftSummary>, rest: &Value) {
    let summary = summary.expect("summary");
    assert_eq!(rest["inSync"], summary.in_sync, "{rest}");
    assert_eq!(rest["drifted"], summary.drifted, "{rest}");
    assert_eq!(rest["stale"], summary.stale, "{rest}");
}

fn assert_drift_matches_rest(drift: &pb::ConfigDrift, rest: &Value) {
    assert_eq!(rest["configId"], drift.config_id, "{rest}");
    assert_eq!(rest["version"], drift.version, "{rest}");
    assert_summary_matches_rest(drift.summary.as_ref(), &rest["summary"]);
    let instances = rest["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), drift.instances.len(), "{rest}");
    let by_id: BTreeMap<&str, &Value> = instances
        .iter()
        .map(|i| (i["instanceId"].as_str().expect("instanceId"), i))
        .collect();
    for instance in &drift.instances {
        let rest = by_id[instance.instance_id.as_str()];
        assert_eq!(rest["environment"], instance.environment);
        assert_eq!(rest["version"], instance.version);
        assert_eq!(rest["checksum"], instance.checksum);
        assert_eq!(
            instant(&instance.reported_at),
            instant_of(&rest["reportedAt"])
        );
        assert_eq!(rest["status"], instance.status);
        assert_eq!(rest["expectedChecksum"], instance.expected_checksum);
    }
}

fn assert_audit_matches_rest(items: &[pb::AuditRecord], rest: &Value) {
    let rest = rest["items"].as_array().expect("items");
    assert_eq!(items.len(), rest.len());
    for (record, rest) in items.iter().zip(rest) {
        assert_eq!(rest["id"], record.id);
        assert_eq!(rest["revision"], record.revision);
        assert_eq!(instant(&record.at), instant_of(&rest["at"]));
        assert_eq!(rest["actor"], record.actor);
        assert_eq!(rest["action"], record.action);
        assert_eq!(rest["configId"], record.config_id);
        assert_eq!(rest["version"].as_u64().unwrap_or(0), record.version);
        assert_eq!(rest["environments"], json!(record.environments));
        assert_eq!(rest["message"].as_str().unwrap_or_default(), record.message);
    }
}

/// The writable parts of a REST version, as one JSON document (absent layers left out).
fn rest_document(rest: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["config", "overrides", "canary", "abTest"] {
        if !rest[key].is_null() {
            out.insert(key.into(), rest[key].clone());
        }
    }
    Value::Object(out)
}

// ---- 1. every RPC ------------------------------------------------------------------------------

#[tokio::test]
async fn every_rpc_round_trips_and_agrees_with_rest() {
    let server = Server::spawn().await;
    let mut client = server.client().await;

    // RegisterSchema, GetSchema
    let registered = within(
        "RegisterSchema",
        client.register_schema(pb::RegisterSchemaRequest {
            config_id: "checkout".into(),
            schema_json: timeout_schema().to_string(),
            metadata: meta("alice", "schema v1"),
        }),
    )
    .await
    .expect("RegisterSchema")
    .into_inner();
    assert_eq!(registered.config_id, "checkout");
    assert_eq!(registered.version, 1);
    assert_eq!(json(&registered.schema_json), timeout_schema());
    assert_eq!(registered.checksum.len(), 64);
    assert_eq!(registered.metadata, meta("alice", "schema v1"));
    let read = within(
        "GetSchema",
        client.get_schema(pb::GetSchemaRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect("GetSchema")
    .into_inner();
    assert_eq!(read, registered);
    let (status, rest) = server.rest_get("/api/v1/configs/checkout/schema").await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["version"], read.version);
    assert_eq!(rest["schema"], json(&read.schema_json));
    assert_eq!(rest["checksum"], read.checksum);
    assert_eq!(instant(&read.created_at), instant_of(&rest["createdAt"]));

    // ValidateConfig: valid, and invalid in the canary layer with a pointer and scope.
    let validate = |document: pb::ConfigDocument| pb::ValidateConfigRequest {
        config_id: "checkout".into(),
        document: Some(document),
    };
    let report = within(
        "ValidateConfig",
        client.validate_config(validate(checkout_doc(30))),
    )
    .await
    .expect("ValidateConfig")
    .into_inner();
    assert_eq!(
        report,
        pb::ValidationReport {
            valid: true,
            schema_version: 1,
            violations: vec![]
        }
    );
    let mut bad = checkout_doc(30);
    bad.canary_json = bad
        .canary_json
        .replace("{\"timeout\":5}", "{\"timeout\":500}");
    assert!(bad.canary_json.contains("500"), "{}", bad.canary_json);
    let report = within(
        "ValidateConfig",
        client.validate_config(validate(bad.clone())),
    )
    .await
    .expect("ValidateConfig")
    .into_inner();
    assert!(!report.valid);
    assert_eq!(report.schema_version, 1);
    assert_eq!(report.violations.len(), 1, "{report:?}");
    assert_eq!(report.violations[0].pointer, "/timeout");
    assert_eq!(report.violations[0].scope, "environment=production,canary");
    let (status, rest) = server
        .rest_post(
            "/api/v1/configs/checkout/schema/validate",
            &json!({
                "config": json(&bad.config_json),
                "overrides": json(&bad.overrides_json),
                "canary": json(&bad.canary_json),
            }),
        )
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["valid"], false);
    assert_eq!(rest["schemaVersion"], 1);
    assert_eq!(
        rest["violations"][0]["pointer"],
        report.violations[0].pointer
    );
    assert_eq!(
        rest["violations"][0]["message"],
        report.violations[0].message
    );
    assert_eq!(rest["violations"][0]["scope"], report.violations[0].scope);

    // PutConfig with overrides and a 10% canary; GetConfig.
    let created = put_doc(&mut client, "checkout", checkout_doc(30)).await;
    assert_eq!(created.config_id, "checkout");
    assert_eq!(created.version, 1);
    assert_eq!(created.rollback_of, None);
    let v1 = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect("GetConfig")
    .into_inner();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.checksum, created.checksum);
    assert_eq!(v1.created_at, created.created_at);
    let sent = checkout_doc(30);
    let got = v1.document.clone().expect("document");
    assert_eq!(json(&got.config_json), json(&sent.config_json));
    assert_eq!(json(&got.overrides_json), json(&sent.overrides_json));
    let canary = json(&got.canary_json);
    assert_eq!(canary["environment"], "production");
    assert_eq!(canary["trafficPercent"], 10.0);
    assert_eq!(canary["config"], json!({"timeout": 5}));
    assert_eq!(
        instant_of(&canary["startAt"]),
        instant("2026-01-01T00:00:00Z")
    );
    assert_eq!(got.ab_test_json, "");
    let (status, rest) = server.rest_get("/api/v1/configs/checkout").await;
    assert_eq!(status, 200, "{rest}");
    assert_version_matches_rest(&v1, &rest);

    // ListConfigs with a prefix.
    let mut eu = doc(json!({"timeout": 20, "color": "red"}));
    eu.ab_test_json = json!({"name": "colors", "variants": [
        {"name": "green", "weight": 1, "config": {"color": "green"}},
        {"name": "gold", "weight": 1, "config": {"color": "gold"}}
    ]})
    .to_string();
    put_doc(&mut client, "checkout-eu", eu).await;
    put(&mut client, "payments", json!({"retries": 3})).await;
    let list = |prefix: &str| pb::ListConfigsRequest {
        prefix: prefix.into(),
    };
    let listed = within("ListConfigs", client.list_configs(list("checkout")))
        .await
        .expect("ListConfigs")
        .into_inner()
        .items;
    let ids: BTreeSet<&str> = listed.iter().map(|c| c.config_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["checkout", "checkout-eu"]));
    let (status, rest) = server.rest_get("/api/v1/configs?prefix=checkout").await;
    assert_eq!(status, 200, "{rest}");
    let rest_items = rest["items"].as_array().expect("items");
    assert_eq!(rest_items.len(), listed.len());
    for summary in &listed {
        let rest = rest_items
            .iter()
            .find(|r| r["configId"] == summary.config_id)
            .unwrap_or_else(|| panic!("REST lacks {}", summary.config_id));
        assert_eq!(rest["version"], summary.version);
        assert_eq!(rest["checksum"], summary.checksum);
        assert_eq!(instant(&summary.updated_at), instant_of(&rest["updatedAt"]));
    }
    let all = within("ListConfigs", client.list_configs(list("")))
        .await
        .expect("ListConfigs")
        .into_inner()
        .items;
    assert_eq!(all.len(), 3);

    // GetEffectiveConfig: inside and outside the canary by key, and by value.
    use pb::get_effective_config_request::Assignment;
    let (inside, outside) = canary_keys("checkout");
    let cases = [
        (
            Some(Assignment::AssignmentKey(inside.clone())),
            format!("assignmentKey={inside}"),
            true,
            5,
        ),
        (
            Some(Assignment::AssignmentKey(outside.clone())),
            format!("assignmentKey={outside}"),
            false,
            10,
        ),
        (
            Some(Assignment::AssignmentValue(0.05)),
            "assignmentValue=0.05".to_owned(),
            true,
            5,
        ),
        (
            Some(Assignment::AssignmentValue(0.5)),
            "assignmentValue=0.5".to_owned(),
            false,
            10,
        ),
        (None, String::new(), false, 10),
    ];
    let mut control_checksum = String::new();
    for (assignment, query, canary, timeout) in cases {
        let effective = within(
            "GetEffectiveConfig",
            client.get_effective_config(pb::GetEffectiveConfigRequest {
                config_id: "checkout".into(),
                environment: "production".into(),
                assignment,
                resolve_secrets: false,
                instance_id: String::new(),
            }),
        )
        .await
        .expect("GetEffectiveConfig")
        .into_inner();
        assert_eq!(effective.environment, "production");
        assert_eq!(
            json(&effective.effective_config_json),
            json!({"timeout": timeout, "color": "blue"}),
            "{query}"
        );
        assert_eq!(
            effective.assignment.as_ref().map(|a| a.canary),
            Some(canary),
            "{query}"
        );
        if !canary {
            control_checksum = effective.checksum.clone();
        }
        let (status, rest) = server
            .rest_get(&format!(
                "/api/v1/configs/checkout/effective?environment=production&{query}"
            ))
            .await;
        assert_eq!(status, 200, "{rest}");
        assert_effective_matches_rest(&effective, &rest);
    }
    // No environment: the base. An A/B test: the variant REST names too.
    let base = within(
        "GetEffectiveConfig",
        client.get_effective_config(pb::GetEffectiveConfigRequest {
            config_id: "checkout".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("GetEffectiveConfig")
    .into_inner();
    assert_eq!(
        json(&base.effective_config_json),
        json!({"timeout": 30, "color": "blue"})
    );
    let (_, rest) = server.rest_get("/api/v1/configs/checkout/effective").await;
    assert_effective_matches_rest(&base, &rest);
    let variant = within(
        "GetEffectiveConfig",
        client.get_effective_config(pb::GetEffectiveConfigRequest {
            config_id: "checkout-eu".into(),
            environment: "staging".into(),
            assignment: Some(Assignment::AssignmentKey("user-7".into())),
            resolve_secrets: false,
            instance_id: String::new(),
        }),
    )
    .await
    .expect("GetEffectiveConfig")
    .into_inner();
    let chosen = variant.assignment.clone().expect("assignment").variant;
    assert!(["green", "gold"].contains(&chosen.as_str()), "{variant:?}");
    assert_eq!(json(&variant.effective_config_json)["color"], chosen);
    let (_, rest) = server
        .rest_get("/api/v1/configs/checkout-eu/effective?environment=staging&assignmentKey=user-7")
        .await;
    assert_effective_matches_rest(&variant, &rest);

    // More versions (2..=5), then ListVersions page by page.
    for timeout in [45, 50, 55, 60] {
        let mut next = checkout_doc(timeout);
        next.canary_json = String::new();
        put_doc(&mut client, "checkout", next).await;
    }
    let mut pages = Vec::new();
    let mut cursor = 0;
    loop {
        let page = within(
            "ListVersions",
            client.list_versions(pb::ListVersionsRequest {
                config_id: "checkout".into(),
                limit: 2,
                cursor,
            }),
        )
        .await
        .expect("ListVersions")
        .into_inner();
        let rest_path = if cursor == 0 {
            "/api/v1/configs/checkout/versions?limit=2".to_owned()
        } else {
            format!("/api/v1/configs/checkout/versions?limit=2&cursor={cursor}")
        };
        let (status, rest) = server.rest_get(&rest_path).await;
        assert_eq!(status, 200, "{rest}");
        assert_eq!(rest["nextCursor"].as_u64().unwrap_or(0), page.next_cursor);
        let rest_items = rest["items"].as_array().expect("items");
        assert_eq!(rest_items.len(), page.items.len());
        for (version, rest) in page.items.iter().zip(rest_items) {
            assert_version_matches_rest(version, rest);
        }
        pages.push(page.items.iter().map(|v| v.version).collect::<Vec<_>>());
        if page.next_cursor == 0 {
            break;
        }
        cursor = page.next_cursor;
        assert!(pages.len() < 10, "pagination does not end: {pages:?}");
    }
    assert_eq!(pages, vec![vec![5, 4], vec![3, 2], vec![1]]);

    // GetVersion
    let again = within(
        "GetVersion",
        client.get_version(pb::GetVersionRequest {
            config_id: "checkout".into(),
            version: 1,
        }),
    )
    .await
    .expect("GetVersion")
    .into_inner();
    assert_eq!(again, v1);
    let (_, rest_v1) = server.rest_get("/api/v1/configs/checkout/versions/1").await;
    assert_version_matches_rest(&again, &rest_v1);
    let (_, rest_v2) = server.rest_get("/api/v1/configs/checkout/versions/2").await;

    // Diff: an RFC 6902 array that turns version 1 into version 2, as REST answers.
    let diff = within(
        "Diff",
        client.diff(pb::DiffRequest {
            config_id: "checkout".into(),
            from: 1,
            to: 2,
            environment: String::new(),
        }),
    )
    .await
    .expect("Diff")
    .into_inner();
    assert_eq!(
        (diff.config_id.as_str(), diff.from, diff.to),
        ("checkout", 1, 2)
    );
    let patch = json(&diff.patch_json);
    let ops = patch.as_array().expect("patch_json is a JSON array");
    assert!(!ops.is_empty());
    assert!(
        ops.iter()
            .all(|op| op["op"].is_string() && op["path"].is_string())
    );
    let operations: json_patch::Patch = serde_json::from_value(patch.clone()).expect("RFC 6902");
    let mut document = rest_document(&rest_v1);
    json_patch::patch(&mut document, &operations).expect("the patch applies to version 1");
    assert_eq!(document, rest_document(&rest_v2));
    let (status, rest) = server
        .rest_get("/api/v1/configs/checkout/diff?from=1&to=2")
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["patch"], patch);
    let env_diff = within(
        "Diff",
        client.diff(pb::DiffRequest {
            config_id: "checkout".into(),
            from: 1,
            to: 2,
            environment: "staging".into(),
        }),
    )
    .await
    .expect("Diff")
    .into_inner();
    let (_, rest) = server
        .rest_get("/api/v1/configs/checkout/diff?from=1&to=2&environment=staging")
        .await;
    assert_eq!(rest["patch"], json(&env_diff.patch_json));
    assert_eq!(
        json(&env_diff.patch_json),
        json!([{"op": "replace", "path": "/timeout", "value": 45}])
    );

    // Rollback to version 1.
    let rolled = within(
        "Rollback",
        client.rollback(pb::RollbackRequest {
            config_id: "checkout".into(),
            target_version: 1,
            metadata: meta("carol", "bad deploy"),
            expected_version: Some(5),
        }),
    )
    .await
    .expect("Rollback")
    .into_inner();
    assert_eq!(rolled.version, 6);
    assert_eq!(rolled.rollback_of, Some(1));
    let v6 = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect("GetConfig")
    .into_inner();
    assert_eq!(v6.rollback_of, Some(1));
    assert_eq!(v6.document, v1.document);
    assert_eq!(v6.checksum, v1.checksum);
    let (_, rest) = server.rest_get("/api/v1/configs/checkout").await;
    assert_eq!(rest["rollbackOf"], 1);
    assert_version_matches_rest(&v6, &rest);

    // ListAudit: one config, and all.
    let audit = within(
        "ListAudit",
        client.list_audit(pb::ListAuditRequest {
            config_id: "checkout".into(),
            limit: 0,
            cursor: 0,
        }),
    )
    .await
    .expect("ListAudit")
    .into_inner();
    let actions: Vec<&str> = audit.items.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "config.rollback",
            "config.put",
            "config.put",
            "config.put",
            "config.put",
            "config.put",
            "schema.put"
        ]
    );
    assert_eq!(audit.items[0].actor, "carol");
    assert_eq!(audit.items[0].version, 6);
    assert_eq!(audit.items[0].message, "bad deploy");
    assert!(
        audit
            .items
            .windows(2)
            .all(|w| w[0].revision > w[1].revision)
    );
    assert_eq!(audit.next_cursor, 0);
    let (_, rest) = server.rest_get("/api/v1/configs/checkout/audit").await;
    assert_audit_matches_rest(&audit.items, &rest);
    let everything = within(
        "ListAudit",
        client.list_audit(pb::ListAuditRequest {
            config_id: String::new(),
            limit: 3,
            cursor: 0,
        }),
    )
    .await
    .expect("ListAudit")
    .into_inner();
    assert_eq!(everything.items.len(), 3);
    assert_ne!(everything.next_cursor, 0);
    let (_, rest) = server.rest_get("/api/v1/audit?limit=3").await;
    assert_audit_matches_rest(&everything.items, &rest);
    assert_eq!(rest["nextCursor"], everything.next_cursor);

    // RecordApplied, GetDrift, GetDriftReport.
    let report = |instance: &str, checksum: &str| pb::RecordAppliedRequest {
        config_id: "checkout".into(),
        environment: "production".into(),
        instance_id: instance.into(),
        version: 6,
        checksum: checksum.into(),
    };
    let in_sync = within(
        "RecordApplied",
        client.record_applied(report("i-1", &control_checksum)),
    )
    .await
    .expect("RecordApplied")
    .into_inner();
    assert_eq!(in_sync.instances.len(), 1);
    assert_eq!(in_sync.instances[0].status, "in_sync");
    assert_eq!(in_sync.instances[0].expected_checksum, control_checksum);
    let drifted = within(
        "RecordApplied",
        client.record_applied(report("i-2", &"0".repeat(64))),
    )
    .await
    .expect("RecordApplied")
    .into_inner();
    assert_eq!(drifted.instances[0].status, "drifted");
    let drift = within(
        "GetDrift",
        client.get_drift(pb::GetDriftRequest {
            config_id: "checkout".into(),
            environment: "production".into(),
        }),
    )
    .await
    .expect("GetDrift")
    .into_inner();
    assert_eq!(drift.version, 6);
    assert_eq!(
        drift.summary,
        Some(pb::DriftSummary {
            in_sync: 1,
            drifted: 1,
            stale: 0
        })
    );
    let (_, rest) = server
        .rest_get("/api/v1/configs/checkout/drift?environment=production")
        .await;
    assert_drift_matches_rest(&drift, &rest);
    let drift_report = within(
        "GetDriftReport",
        client.get_drift_report(pb::GetDriftReportRequest {}),
    )
    .await
    .expect("GetDriftReport")
    .into_inner();
    assert_eq!(drift_report.summary, drift.summary);
    assert_eq!(drift_report.configs.len(), 1);
    let (_, rest) = server.rest_get("/api/v1/drift").await;
    assert_summary_matches_rest(drift_report.summary.as_ref(), &rest["summary"]);
    assert_drift_matches_rest(&drift_report.configs[0], &rest["configs"][0]);

    // DeleteConfig: gone from reads, history and audit stay.
    let deleted = within(
        "DeleteConfig",
        client.delete_config(pb::DeleteConfigRequest {
            config_id: "payments".into(),
            metadata: meta("dave", "retired"),
            expected_version: Some(1),
        }),
    )
    .await
    .expect("DeleteConfig")
    .into_inner();
    assert_eq!(
        deleted,
        pb::DeleteConfigResponse {
            config_id: "payments".into(),
            version: 1,
            change_request_id: String::new(),
        }
    );
    let gone = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "payments".into(),
        }),
    )
    .await
    .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    let (status, _) = server.rest_get("/api/v1/configs/payments").await;
    assert_eq!(status, 404);
    let history = within(
        "ListVersions",
        client.list_versions(pb::ListVersionsRequest {
            config_id: "payments".into(),
            limit: 0,
            cursor: 0,
        }),
    )
    .await
    .expect("history stays")
    .into_inner();
    assert_eq!(history.items.len(), 1);
    let audit = within(
        "ListAudit",
        client.list_audit(pb::ListAuditRequest {
            config_id: "payments".into(),
            limit: 0,
            cursor: 0,
        }),
    )
    .await
    .expect("ListAudit")
    .into_inner();
    assert_eq!(audit.items[0].action, "config.delete");
    assert_eq!(audit.items[0].actor, "dave");
    let remaining = within("ListConfigs", client.list_configs(list("")))
        .await
        .expect("ListConfigs")
        .into_inner()
        .items;
    assert_eq!(remaining.len(), 2);

    server.stop().await;
}

// ---- 2. errors ---------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_config_id_is_invalid_argument_naming_the_field() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    let status = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "Not Valid!".into(),
        }),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "invalid_input");
    assert_eq!(md(&status, "summit-field"), "configId");
    let details: Value = violations_of(&status);
    assert_eq!(details[0]["pointer"], "configId");

    // The same on a write, which changes nothing.
    let status = within(
        "PutConfig",
        client.put_config(put_request("UPPER", doc(json!({"a": 1})))),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(md(&status, "summit-field"), "configId");
    assert_no_configs(&mut client).await;
}

#[tokio::test]
async fn a_message_over_the_body_limit_is_resource_exhausted_and_changes_nothing() {
    const LIMIT: usize = 64 * 1024;
    let server = Server::spawn_with(|s| s.max_body_bytes = LIMIT).await;
    let mut client = server.client().await;
    let mut large = doc(json!({}));
    large.config_json = json!({ "blob": "x".repeat(LIMIT) }).to_string();
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", large)),
    )
    .await
    .expect_err("refused");
    // As gRPC's status codes say (tonic alone would answer OUT_OF_RANGE), and as REST's 413.
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "payload_too_large");
    assert!(status.message().contains(&LIMIT.to_string()), "{status:?}");
    assert_no_configs(&mut client).await;
    // Within the limit, the same call is served.
    let mut small = doc(json!({}));
    small.config_json = json!({ "blob": "x".repeat(LIMIT / 2) }).to_string();
    within(
        "PutConfig",
        client.put_config(put_request("checkout", small)),
    )
    .await
    .expect("a message within the limit is written");
}

#[tokio::test]
async fn malformed_json_fields_are_invalid_argument_naming_the_field() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    let mut malformed = doc(json!({}));
    malformed.config_json = "{\"timeout\": ".into();
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", malformed)),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "invalid_input");
    // The field, and the pointer inside it where the text broke off.
    assert_eq!(md(&status, "summit-field"), "document.configJson/timeout");
    assert!(status.message().contains("malformed JSON"), "{status:?}");
    let mut not_json = doc(json!({}));
    not_json.config_json = "timeout = 30".into();
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", not_json)),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-field"), "document.configJson");
    let details: Value = violations_of(&status);
    assert_eq!(details[0]["pointer"], "document.configJson");

    // A member name that is not plain ASCII cannot travel in ASCII metadata: the field is in
    // `summit-field-bin`, as UTF-8.
    let mut non_ascii = doc(json!({}));
    non_ascii.config_json = "{\"größe\": ".into();
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", non_ascii)),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.metadata().get("summit-field").is_none(),
        "{status:?}"
    );
    let field = status
        .metadata()
        .get_bin("summit-field-bin")
        .expect("summit-field-bin")
        .to_bytes()
        .expect("binary metadata");
    assert_eq!(&field[..], "document.configJson/größe".as_bytes());

    // A well-formed layer of the wrong shape names the pointer inside the field.
    let mut wrong = checkout_doc(30);
    wrong.canary_json = json!({
        "environment": "production",
        "trafficPercent": "ten",
        "config": {},
        "startAt": "2026-01-01T00:00:00Z"
    })
    .to_string();
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", wrong)),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        md(&status, "summit-field"),
        "document.canaryJson/trafficPercent"
    );

    // A missing document or metadata is named too.
    let status = within(
        "PutConfig",
        client.put_config(pb::PutConfigRequest {
            config_id: "checkout".into(),
            document: None,
            metadata: meta("a", ""),
            expected_version: None,
        }),
    )
    .await
    .expect_err("refused");
    assert_eq!(md(&status, "summit-field"), "document");

    let status = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect_err("nothing was written");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn missing_config_is_not_found() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    let status = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "missing".into(),
        }),
    )
    .await
    .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "not_found");
    let status = within(
        "GetEffectiveConfig",
        client.get_effective_config(pb::GetEffectiveConfigRequest {
            config_id: "missing".into(),
            ..Default::default()
        }),
    )
    .await
    .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    let status = within(
        "GetVersion",
        client.get_version(pb::GetVersionRequest {
            config_id: "missing".into(),
            version: 1,
        }),
    )
    .await
    .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn expected_version_mismatch_is_aborted_with_the_current_version() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    put(&mut client, "checkout", json!({"timeout": 30})).await;
    for expected in [0, 5] {
        let mut request = put_request("checkout", doc(json!({"timeout": 31})));
        request.expected_version = Some(expected);
        let status = within("PutConfig", client.put_config(request))
            .await
            .expect_err("conflict");
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert_eq!(md(&status, "summit-code"), "version_conflict");
        assert_eq!(md(&status, "summit-current-version"), "1");
    }
    let status = within(
        "DeleteConfig",
        client.delete_config(pb::DeleteConfigRequest {
            config_id: "checkout".into(),
            metadata: meta("a", ""),
            expected_version: Some(2),
        }),
    )
    .await
    .expect_err("conflict");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(md(&status, "summit-current-version"), "1");
    let current = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect("still there")
    .into_inner();
    assert_eq!(current.version, 1, "nothing was written");
    let mut request = put_request("checkout", doc(json!({"timeout": 31})));
    request.expected_version = Some(1);
    let created = within("PutConfig", client.put_config(request))
        .await
        .expect("the matching version writes")
        .into_inner();
    assert_eq!(created.version, 2);
}

#[tokio::test]
async fn schema_violation_is_invalid_argument_with_violations_in_metadata() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    within(
        "RegisterSchema",
        client.register_schema(pb::RegisterSchemaRequest {
            config_id: "checkout".into(),
            schema_json: timeout_schema().to_string(),
            metadata: meta("a", ""),
        }),
    )
    .await
    .expect("RegisterSchema");
    let status = within(
        "PutConfig",
        client.put_config(put_request("checkout", checkout_doc(500))),
    )
    .await
    .expect_err("violates the schema");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "schema_violation");
    let violations: Value = violations_of(&status);
    let violations = violations.as_array().expect("an array of violations");
    assert!(!violations.is_empty());
    assert!(
        violations
            .iter()
            .all(|v| v["pointer"] == "/timeout" && v["message"].is_string()),
        "{violations:?}"
    );
    let status = within(
        "GetConfig",
        client.get_config(pb::GetConfigRequest {
            config_id: "checkout".into(),
        }),
    )
    .await
    .expect_err("nothing was written");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn unknown_secret_is_failed_precondition_only_when_resolving() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    let reference = json!({"$secret": "env:GRPC_IT_SECRET_THAT_IS_NEVER_SET"});
    put(
        &mut client,
        "secretive",
        json!({"password": reference, "user": "app"}),
    )
    .await;
    let request = |resolve_secrets| pb::GetEffectiveConfigRequest {
        config_id: "secretive".into(),
        resolve_secrets,
        ..Default::default()
    };
    let plain = within(
        "GetEffectiveConfig",
        client.get_effective_config(request(false)),
    )
    .await
    .expect("references are served as stored")
    .into_inner();
    assert_eq!(json(&plain.effective_config_json)["password"], reference);
    let status = within(
        "GetEffectiveConfig",
        client.get_effective_config(request(true)),
    )
    .await
    .expect_err("unresolvable");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "secret_unresolved");
    let details: Value = violations_of(&status);
    assert_eq!(details[0]["pointer"], "/password");
}

#[tokio::test]
async fn failing_secret_provider_is_unavailable_naming_the_reference() {
    let closed = crate::common::secret_servers::free_port();
    let server = Server::spawn_with(|s| {
        s.vault_addr = Some(format!("http://127.0.0.1:{closed}"));
        s.vault_token = Some("grpc-it-vault-token".into());
        s.secret_timeout_ms = 300;
    })
    .await;
    let mut client = server.client().await;
    let reference = "vault:secret/app/db#password";
    put(
        &mut client,
        "remote",
        json!({"db": {"password": {"$secret": reference}}}),
    )
    .await;
    let status = within(
        "GetEffectiveConfig",
        client.get_effective_config(pb::GetEffectiveConfigRequest {
            config_id: "remote".into(),
            resolve_secrets: true,
            ..Default::default()
        }),
    )
    .await
    .expect_err("the provider is unreachable");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "secret_provider_failed");
    assert!(status.message().contains(reference), "{status:?}");
    assert_eq!(violations_of(&status)[0]["pointer"], "/db/password");
}

// ---- 3. watch ordering -------------------------------------------------------------------------

#[tokio::test]
async fn watch_sends_snapshots_then_changes_in_revision_order_with_filters_and_effective() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    let mut a_one = checkout_doc(30);
    a_one.config_json = json!({"timeout": 30, "name": "a.one"}).to_string();
    put_doc(&mut client, "a.one", a_one.clone()).await;
    put(&mut client, "a.two", json!({"n": 2})).await;
    put(&mut client, "b.one", json!({"n": 3})).await;
    let (inside, outside) = canary_keys("a.one");

    let mut all = watch(&mut client, pb::WatchRequest::default()).await;
    let mut by_ids = watch(
        &mut client,
        pb::WatchRequest {
            config_ids: vec!["b.one".into()],
            ..Default::default()
        },
    )
    .await;
    let mut by_prefix = watch(
        &mut client,
        pb::WatchRequest {
            prefix: "a.".into(),
            ..Default::default()
        },
    )
    .await;
    let effective_watch = |key: &str| pb::WatchRequest {
        config_ids: vec!["a.one".into()],
        environment: "production".into(),
        assignment_key: key.into(),
        include_effective: true,
        ..Default::default()
    };
    let mut in_canary = watch(&mut client, effective_watch(&inside)).await;
    let mut in_control = watch(&mut client, effective_watch(&outside)).await;

    // Snapshots: one per matching config, all at the same (latest) revision.
    let snaps = snapshots(&mut all, 3).await;
    assert_eq!(
        snaps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a.one", "a.two", "b.one"]
    );
    let start = snapshot_of(&snaps["a.one"]).revision;
    for (id, event) in &snaps {
        let snapshot = snapshot_of(event);
        assert_eq!(snapshot.revision, start, "{id}");
        assert_eq!(snapshot.kind, "config.updated");
        assert_eq!(snapshot.version, 1);
        assert_eq!(snapshot.actor, "alice");
        assert_eq!(snapshot.message, format!("write {id}"));
        let current = within(
            "GetConfig",
            client.get_config(pb::GetConfigRequest {
                config_id: id.clone(),
            }),
        )
        .await
        .expect("GetConfig")
        .into_inner();
        assert_eq!(snapshot.checksum, current.checksum);
        assert!(event.effective.is_none(), "not asked for");
    }
    let audit = within(
        "ListAudit",
        client.list_audit(pb::ListAuditRequest {
            limit: 1,
            ..Default::default()
        }),
    )
    .await
    .expect("ListAudit")
    .into_inner();
    assert_eq!(start, audit.items[0].revision, "the latest revision");
    let ids_snaps = snapshots(&mut by_ids, 1).await;
    assert!(ids_snaps.contains_key("b.one"));
    let prefix_snaps = snapshots(&mut by_prefix, 2).await;
    assert_eq!(
        prefix_snaps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a.one", "a.two"]
    );
    for (stream, key, canary, timeout) in [
        (&mut in_canary, &inside, true, 5),
        (&mut in_control, &outside, false, 10),
    ] {
        let event = next_event(stream).await;
        assert_eq!(snapshot_of(&event).config_id, "a.one");
        let effective = event.effective.expect("effective attached to the snapshot");
        assert_eq!(effective.version, 1);
        assert_eq!(effective.environment, "production");
        assert_eq!(
            effective.assignment.as_ref().map(|a| a.canary),
            Some(canary)
        );
        assert_eq!(json(&effective.effective_config_json)["timeout"], timeout);
        let direct = within(
            "GetEffectiveConfig",
            client.get_effective_config(pb::GetEffectiveConfigRequest {
                config_id: "a.one".into(),
                environment: "production".into(),
                assignment: Some(pb::get_effective_config_request::Assignment::AssignmentKey(
                    key.clone(),
                )),
                resolve_secrets: false,
                instance_id: String::new(),
            }),
        )
        .await
        .expect("GetEffectiveConfig")
        .into_inner();
        assert_eq!(effective, direct);
    }

    // Writes of every kind after the snapshot.
    let mut a_one_v2 = a_one.clone();
    a_one_v2.overrides_json = json!({"production": {"timeout": 12}}).to_string();
    put_doc(&mut client, "a.one", a_one_v2).await;
    put(&mut client, "b.one", json!({"n": 4})).await;
    within(
        "RegisterSchema",
        client.register_schema(pb::RegisterSchemaRequest {
            config_id: "a.two".into(),
            schema_json: json!({"type": "object"}).to_string(),
            metadata: meta("bob", "schema"),
        }),
    )
    .await
    .expect("RegisterSchema");
    within(
        "DeleteConfig",
        // No metadata, as a REST DELETE without a body: the caller is the actor.
        client.delete_config(pb::DeleteConfigRequest {
            config_id: "a.two".into(),
            metadata: None,
            expected_version: None,
        }),
    )
    .await
    .expect("DeleteConfig");
    put(&mut client, "a.three", json!({"n": 5})).await;

    let expected = [
        ("config.updated", "a.one", Some(2)),
        ("config.updated", "b.one", Some(2)),
        ("schema.updated", "a.two", None),
        ("config.deleted", "a.two", Some(1)),
        ("config.updated", "a.three", Some(1)),
    ];
    let mut changes = Vec::new();
    for _ in 0..expected.len() {
        changes.push(next_change(&mut all).await);
    }
    for (i, (change, (kind, id, version))) in changes.iter().zip(expected).enumerate() {
        assert_eq!(change.revision, start + 1 + i as u64, "{changes:?}");
        assert_eq!(
            (change.kind.as_str(), change.config_id.as_str()),
            (kind, id)
        );
        if let Some(version) = version {
            assert_eq!(change.version, version, "{change:?}");
        }
        assert!(!change.actor.is_empty());
        instant(&change.at);
    }
    assert_quiet(&mut all, "unfiltered watch").await;

    let b = next_change(&mut by_ids).await;
    assert_eq!(b, changes[1]);
    assert_quiet(&mut by_ids, "config_ids watch").await;

    let mut prefixed = Vec::new();
    for _ in 0..4 {
        prefixed.push(next_change(&mut by_prefix).await);
    }
    let wanted: Vec<_> = changes
        .iter()
        .filter(|c| c.config_id.starts_with("a."))
        .cloned()
        .collect();
    assert_eq!(prefixed, wanted);
    assert_quiet(&mut by_prefix, "prefix watch").await;

    for (stream, canary, timeout) in [(&mut in_canary, true, 5), (&mut in_control, false, 12)] {
        let event = next_event(stream).await;
        assert_eq!(change_of(&event), changes[0]);
        let effective = event.effective.expect("effective attached to the change");
        assert_eq!(effective.version, 2);
        assert_eq!(
            effective.assignment.as_ref().map(|a| a.canary),
            Some(canary)
        );
        assert_eq!(json(&effective.effective_config_json)["timeout"], timeout);
        assert_quiet(stream, "effective watch").await;
    }
}

#[tokio::test]
async fn include_effective_on_replayed_changes_is_the_config_after_that_change() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    put(&mut client, "replayed", json!({"v": 1})).await;
    let audit = within(
        "ListAudit",
        client.list_audit(pb::ListAuditRequest {
            limit: 1,
            ..Default::default()
        }),
    )
    .await
    .expect("ListAudit")
    .into_inner();
    let start = audit.items[0].revision;
    for v in 2..=3 {
        put(&mut client, "replayed", json!({"v": v})).await;
    }
    let mut stream = watch(
        &mut client,
        pb::WatchRequest {
            config_ids: vec!["replayed".into()],
            include_effective: true,
            from_revision: Some(start),
            ..Default::default()
        },
    )
    .await;
    for v in 2..=3 {
        let event = next_event(&mut stream).await;
        assert_eq!(change_of(&event).version, v);
        let effective = event.effective.expect("effective attached");
        // Observed: version 3 and {"v":3} on the event of version 2.
        assert_eq!(effective.version, v, "effective of the event's version");
        assert_eq!(json(&effective.effective_config_json), json!({"v": v}));
    }
}

// ---- 4. resume ---------------------------------------------------------------------------------

#[tokio::test]
async fn watch_resumes_from_a_revision_with_no_gap_and_no_duplicate() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    put(&mut client, "resume", json!({"v": 1})).await;
    let mut stream = watch(&mut client, pb::WatchRequest::default()).await;
    let start = snapshot_of(&next_event(&mut stream).await).revision;
    for v in 2..=4 {
        put(&mut client, "resume", json!({"v": v})).await;
    }
    let mut last_seen = start;
    for v in 2..=4 {
        let change = next_change(&mut stream).await;
        assert_eq!((change.revision, change.version), (last_seen + 1, v));
        last_seen = change.revision;
    }
    drop(stream);

    for v in 5..=8 {
        put(&mut client, "resume", json!({"v": v})).await;
    }
    let mut resumed = watch(
        &mut client,
        pb::WatchRequest {
            from_revision: Some(last_seen),
            ..Default::default()
        },
    )
    .await;
    for v in 5..=8 {
        let change = next_change(&mut resumed).await;
        assert_eq!(
            (change.revision, change.version),
            (last_seen + 1, v),
            "missed revisions first, no snapshot"
        );
        last_seen = change.revision;
    }
    for v in 9..=10 {
        put(&mut client, "resume", json!({"v": v})).await;
        let change = next_change(&mut resumed).await;
        assert_eq!(
            (change.revision, change.version),
            (last_seen + 1, v),
            "live"
        );
        last_seen = change.revision;
    }
    assert_quiet(&mut resumed, "resumed watch").await;

    // The latest revision itself is a valid place to resume: nothing to replay.
    let mut at_head = watch(
        &mut client,
        pb::WatchRequest {
            from_revision: Some(last_seen),
            ..Default::default()
        },
    )
    .await;
    assert_quiet(&mut at_head, "watch from the latest revision").await;

    let status = within(
        "Watch",
        client.watch(pb::WatchRequest {
            from_revision: Some(last_seen + 100),
            ..Default::default()
        }),
    )
    .await
    .expect_err("a revision ahead of the log");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "invalid_input");
    assert_eq!(md(&status, "summit-field"), "fromRevision");
}

// ---- 5. overflow and slots ---------------------------------------------------------------------

/// Reads a stream to its end: the changes, then the final resync revision if any.
async fn drain(stream: &mut Events) -> (Vec<pb::WatchEvent>, Option<u64>) {
    let mut events = Vec::new();
    loop {
        let item = within("draining a watch", stream.message())
            .await
            .unwrap_or_else(|status| panic!("watch stream failed: {status:?}"));
        match item {
            None => return (events, None),
            Some(pb::WatchEvent {
                event: Some(Event::Resync(resync)),
                ..
            }) => {
                let end = within("the end after a resync", stream.message()).await;
                assert!(
                    matches!(end, Ok(None)),
                    "a resync is the last message: {end:?}"
                );
                return (events, Some(resync.revision));
            }
            Some(pb::WatchEvent {
                event: Some(Event::Heartbeat(_)),
                ..
            }) => {}
            Some(event) => events.push(event),
        }
    }
}

#[tokio::test]
async fn unread_watch_overflows_into_a_final_resync_it_can_resume_from() {
    let server = Server::spawn_with(|s| s.watch_buffer = 4).await;
    let mut writer = server.client().await;
    let payload = "x".repeat(1000);
    put(&mut writer, "bulk", json!({"n": 0, "payload": payload})).await;
    // A small receive window fills after a few dozen ~1 KB messages.
    let small_window = server
        .connect(
            server
                .endpoint()
                .initial_stream_window_size(64 * 1024)
                .initial_connection_window_size(64 * 1024),
        )
        .await;
    let mut reader = ConfigServiceClient::new(small_window);
    let request = pb::WatchRequest {
        config_ids: vec!["bulk".into()],
        include_effective: true,
        ..Default::default()
    };
    let mut stream = watch(&mut reader, request.clone()).await;
    let start = snapshot_of(&next_event(&mut stream).await).revision;

    const WRITES: u64 = 400;
    for n in 1..=WRITES {
        put(&mut writer, "bulk", json!({"n": n, "payload": payload})).await;
    }
    let last = start + WRITES;

    let (events, resync) = drain(&mut stream).await;
    let resync = resync.expect("the overflowing stream ends with a resync");
    let revisions: Vec<u64> = events.iter().map(|e| change_of(e).revision).collect();
    assert!(
        !revisions.is_empty(),
        "some changes arrived before the resync"
    );
    let expected: Vec<u64> = (start + 1..=start + revisions.len() as u64).collect();
    assert_eq!(revisions, expected, "in order, no gap");
    assert!(revisions.len() < WRITES as usize, "it did overflow");
    assert_eq!(
        resync,
        *revisions.last().expect("a change"),
        "the resync names the last revision delivered"
    );

    // Resume from the resync's revision on an ordinary connection, reading eagerly.
    let mut resumes = 0;
    let mut cursor = resync;
    let mut client = server.client().await;
    while cursor < last {
        resumes += 1;
        assert!(resumes <= 50, "resuming does not converge (at {cursor})");
        let mut stream = watch(
            &mut client,
            pb::WatchRequest {
                from_revision: Some(cursor),
                ..request.clone()
            },
        )
        .await;
        loop {
            let item = within("reading a resumed watch", stream.message())
                .await
                .expect("resumed stream");
            match item.and_then(|e| e.event) {
                Some(Event::Change(change)) => {
                    assert_eq!(change.revision, cursor + 1, "no gap, no duplicate");
                    cursor = change.revision;
                    if cursor == last {
                        break;
                    }
                }
                Some(Event::Resync(again)) => {
                    assert_eq!(again.revision, cursor);
                    break;
                }
                Some(Event::Heartbeat(_)) => {}
                other => panic!("unexpected on a resumed watch: {other:?}"),
            }
        }
    }
    assert_eq!(cursor, last);
    assert_eq!(resumes, 1, "an eager reader resumes in one go");
}

#[tokio::test]
async fn dropped_watch_frees_its_slot() {
    let server = Server::spawn_with(|s| s.max_watchers = 2).await;
    let mut client = server.client().await;
    let first = watch(&mut client, pb::WatchRequest::default()).await;
    let mut second = watch(&mut client, pb::WatchRequest::default()).await;
    let status = within("Watch", client.watch(pb::WatchRequest::default()))
        .await
        .expect_err("beyond max_watchers");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(md(&status, "summit-code"), "unavailable");

    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        match within("Watch", client.watch(pb::WatchRequest::default())).await {
            Ok(stream) => break stream.into_inner(),
            Err(status) if status.code() == Code::Unavailable => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the dropped watch's slot was not freed within 5 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("Watch: {status:?}"),
        }
    };
    let status = within("Watch", client.watch(pb::WatchRequest::default()))
        .await
        .expect_err("full again");
    assert_eq!(status.code(), Code::Unavailable);

    put(&mut client, "after", json!({"ok": true})).await;
    for stream in [&mut second, &mut third] {
        let change = next_change(stream).await;
        assert_eq!(change.config_id, "after");
    }
}

// ---- 6. many watchers --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_watchers_each_receive_a_burst_of_100_writes_complete_and_in_order() {
    const WATCHERS: usize = 200;
    const CONNECTIONS: usize = 10;
    const CONFIGS: u64 = 10;
    const WRITES_PER_CONFIG: u64 = 10;
    let server = Server::spawn().await;
    let mut writer = server.client().await;
    put(&mut writer, "seed", json!({"n": 0})).await;

    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(server.channel().await);
    }
    let mut streams = Vec::new();
    for i in 0..WATCHERS {
        let mut client = ConfigServiceClient::new(channels[i % CONNECTIONS].clone());
        streams.push(watch(&mut client, pb::WatchRequest::default()).await);
    }
    let total = CONFIGS * WRITES_PER_CONFIG;
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let snapshot = snapshot_of(&next_event(&mut stream).await);
                let mut changes = Vec::new();
                for _ in 0..total {
                    changes.push(next_change(&mut stream).await);
                }
                (snapshot, changes)
            })
        })
        .collect();

    // The burst: 10 configs written concurrently, 10 versions each.
    let writers: Vec<_> = (0..CONFIGS)
        .map(|c| {
            let mut client = writer.clone();
            tokio::spawn(async move {
                for v in 1..=WRITES_PER_CONFIG {
                    put(&mut client, &format!("burst-{c}"), json!({"v": v})).await;
                }
            })
        })
        .collect();
    for handle in writers {
        within("a writer", handle).await.expect("writer task");
    }

    let results = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(readers))
        .await
        .expect("every watcher finished within 60 s");
    let mut reference: Option<Vec<pb::ChangeEvent>> = None;
    for (i, result) in results.into_iter().enumerate() {
        let (snapshot, changes) = result.expect("reader task");
        assert_eq!(snapshot.config_id, "seed", "watcher {i}");
        let start = snapshot.revision;
        let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
        let expected: Vec<u64> = (start + 1..=start + total).collect();
        assert_eq!(revisions, expected, "watcher {i}: complete and in order");
        let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for change in &changes {
            versions
                .entry(change.config_id.as_str())
                .or_default()
                .push(change.version);
        }
        assert_eq!(versions.len(), CONFIGS as usize, "watcher {i}");
        for (id, seen) in &versions {
            let wanted: Vec<u64> = (1..=WRITES_PER_CONFIG).collect();
            assert_eq!(seen, &wanted, "watcher {i}, {id}");
        }
        match &reference {
            None => reference = Some(changes),
            Some(first) => assert_eq!(first, &changes, "watcher {i} saw the same stream"),
        }
    }
}

// ---- 7. health and reflection ------------------------------------------------------------------

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_services() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let server = Server::spawn().await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "summit.config.v1.ConfigService"] {
        let response = within(
            "Health.Check",
            health.check(HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .unwrap_or_else(|status| panic!("Check({service:?}): {status:?}"))
        .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let status = within(
        "Health.Check",
        health.check(HealthCheckRequest {
            service: "no.such.Service".into(),
        }),
    )
    .await
    .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = within(
        "ServerReflectionInfo",
        reflection.server_reflection_info(futures::stream::iter([request])),
    )
    .await
    .expect("ServerReflectionInfo")
    .into_inner();
    let response: ServerReflectionResponse = within("reflection answer", responses.message())
        .await
        .expect("reflection stream")
        .expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list: {response:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in ["summit.config.v1.ConfigService", "grpc.health.v1.Health"] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
}

#[tokio::test]
async fn version_zero_is_invalid_argument_as_over_rest() {
    let server = Server::spawn().await;
    let mut client = server.client().await;
    put(&mut client, "svc", json!({"v": 1})).await;
    let status = within(
        "GetVersion",
        client.get_version(pb::GetVersionRequest {
            config_id: "svc".into(),
            version: 0,
        }),
    )
    .await
    .expect_err("version 0");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-field"), "version");
    let status = within(
        "Rollback",
        client.rollback(pb::RollbackRequest {
            config_id: "svc".into(),
            target_version: 0,
            metadata: meta("ops", "nothing"),
            expected_version: None,
        }),
    )
    .await
    .expect_err("target 0");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(md(&status, "summit-field"), "/targetVersion");
    // Diff with neither bound compares the latest version with the one before it.
    put(&mut client, "svc", json!({"v": 2})).await;
    let diff = within(
        "Diff",
        client.diff(pb::DiffRequest {
            config_id: "svc".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("diff")
    .into_inner();
    assert_eq!((diff.from, diff.to), (1, 2));
}

/// The violations JSON the server puts in the `summit-violations-bin` metadata entry (`[]` when
/// there is none); the status details stay empty for other gRPC implementations to parse.
fn violations_of(status: &Status) -> Value {
    assert!(
        status.details().is_empty(),
        "details are reserved for google.rpc.Status"
    );
    match status.metadata().get_bin("summit-violations-bin") {
        Some(value) => {
            serde_json::from_slice(&value.to_bytes().expect("base64")).expect("JSON violations")
        }
        None => json!([]),
    }
}

//! What `apply` and `import` read from and write to the server: live configs, schemas and
//! flags as core types, and writes made against the version that was read.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::apply::Kind;
use futures::{StreamExt, TryStreamExt};

use super::bundle::{self, ConfigEntry};
use super::client::{Client, Failure, Result, segment};
use crate::core::approvals::model::ChangeRequest;
use crate::core::flags::FlagDefinition;
use crate::core::model::ConfigDocument;

/// What a write became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new version.
    Written(u64),
    /// A change request waiting for approvals (its id).
    Pending(String),
    Deleted,
}

pub fn outcome_json(outcome: &Result<Outcome>) -> Value {
    match outcome {
        Ok(Outcome::Written(version)) => json!({"status": "written", "version": version}),
        Ok(Outcome::Pending(request)) => json!({"status": "pending", "changeRequest": request}),
        Ok(Outcome::Deleted) => json!({"status": "deleted"}),
        Err(failure) => json!({
            "status": "failed",
            "exitCode": failure.exit_code(),
            "reason": failure.one_line(),
        }),
    }
}

/// A config as the server has it: its current version (if live) and its schema (if any; a
/// schema may be registered before the first version).
pub struct LiveConfig {
    pub current: Option<(u64, ConfigDocument)>,
    pub schema: Option<Value>,
}

/// A GET that answers `None` for 404.
pub async fn optional(client: &Client, path: &str) -> Result<Option<Value>> {
    match client.get(path, &[]).await {
        Ok(value) => Ok(Some(value)),
        Err(Failure::Problem { status: 404, .. }) => Ok(None),
        Err(failure) => Err(failure),
    }
}

pub async fn config(client: &Client, id: &str, with_schema: bool) -> Result<LiveConfig> {
    let path = format!("/api/v1/configs/{}", segment(id));
    let current = match optional(client, &path).await? {
        Some(version) => {
            let document = bundle::config_document(&version)
                .map_err(|e| Failure::other(format!("config {id} as the server sent it: {e}")))?;
            Some((version["version"].as_u64().unwrap_or(0), document))
        }
        None => None,
    };
    let schema = if with_schema {
        optional(client, &format!("{path}/schema"))
            .await?
            .map(|answer| answer["schema"].clone())
    } else {
        None
    };
    Ok(LiveConfig { current, schema })
}

/// The live state of each declared config (its schema too when the entry has one), eight
/// requests at a time.
pub async fn configs(
    client: &Client,
    declared: &BTreeMap<String, ConfigEntry>,
) -> Result<BTreeMap<String, LiveConfig>> {
    futures::stream::iter(declared)
        .map(|(id, entry)| async move {
            let live = config(client, id, entry.schema.is_some()).await?;
            Ok((id.clone(), live))
        })
        .buffered(8)
        .try_collect()
        .await
}

/// The live configs' ids and current versions.
pub async fn config_ids(client: &Client) -> Result<Vec<(String, u64)>> {
    let list = client.get("/api/v1/configs", &[]).await?;
    Ok(items(&list)
        .iter()
        .filter_map(|c| Some((c["configId"].as_str()?.to_owned(), c["version"].as_u64()?)))
        .collect())
}

/// The live flags: key → (version, definition).
pub async fn flags(client: &Client) -> Result<BTreeMap<String, (u64, FlagDefinition)>> {
    let list = client.get("/api/v1/feature-flags", &[]).await?;
    let mut flags = BTreeMap::new();
    for flag in items(&list) {
        let key = flag["key"].as_str().unwrap_or_default().to_owned();
        let definition = bundle::flag_definition(flag)
            .map_err(|e| Failure::other(format!("flag {key} as the server sent it: {e}")))?;
        flags.insert(key, (flag["version"].as_u64().unwrap_or(0), definition));
    }
    Ok(flags)
}

/// The most change requests one list answers.
const MOST_LISTED: usize = 500;

/// The pending change requests that may concern `subjects`; none when the token may not list
/// them. One read of them all; when there are more than one read holds, one read per subject
/// (eight at a time), so that none is missed.
pub async fn pending_requests(
    client: &Client,
    subjects: &[(Kind, &str)],
) -> Result<Vec<ChangeRequest>> {
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let limit = ("limit", MOST_LISTED.to_string());
    let all = match pending(client, std::slice::from_ref(&limit)).await? {
        Some(all) if all.len() < MOST_LISTED => return Ok(all),
        Some(all) => all,
        None => return Ok(Vec::new()),
    };
    let mut requests: Vec<ChangeRequest> = futures::stream::iter(subjects)
        .map(|(kind, id)| {
            let filter = if *kind == Kind::Flag {
                "flagKey"
            } else {
                "configId"
            };
            let query = [limit.clone(), (filter, (*id).to_owned())];
            async move { pending(client, &query).await }
        })
        .buffered(8)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    requests.extend(all);
    Ok(requests)
}

/// One read of pending change requests; `None` when the token may not list them.
async fn pending(client: &Client, query: &[(&str, String)]) -> Result<Option<Vec<ChangeRequest>>> {
    match client.get("/api/v1/change-requests", query).await {
        Ok(list) => Ok(Some(
            items(&list)
                .iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect(),
        )),
        Err(Failure::Problem {
            status: 401 | 403, ..
        }) => Ok(None),
        Err(failure) => Err(failure),
    }
}

fn items(list: &Value) -> &[Value] {
    list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Writes a config's document (against `base`, 0 when it must not exist yet) and schema. The
/// schema goes first, unless the live document violates it (422): then the document first, so
/// both move together whichever of the two the other depends on.
pub async fn write_config(
    client: &Client,
    id: &str,
    document: Option<(&ConfigDocument, u64)>,
    schema: Option<&Value>,
    meta: &Value,
) -> Vec<(Kind, Result<Outcome>)> {
    match (document, schema) {
        (None, None) => Vec::new(),
        (Some(document), None) => {
            vec![(Kind::Config, put_document(client, id, document, meta).await)]
        }
        (None, Some(schema)) => vec![(Kind::Schema, put_schema(client, id, schema, meta).await)],
        (Some(document), Some(schema)) => match put_schema(client, id, schema, meta).await {
            Err(Failure::Problem { status: 422, .. }) => {
                let written = put_document(client, id, document, meta).await;
                let schema = put_schema(client, id, schema, meta).await;
                vec![(Kind::Config, written), (Kind::Schema, schema)]
            }
            // Refused otherwise: the document waits for its schema, so that the two never
            // part (a document served under the schema it was not meant for).
            Err(failure) => {
                let waits = Failure::other(format!(
                    "not written: its schema was refused ({})",
                    failure.one_line()
                ));
                vec![(Kind::Schema, Err(failure)), (Kind::Config, Err(waits))]
            }
            first => vec![
                (Kind::Schema, first),
                (Kind::Config, put_document(client, id, document, meta).await),
            ],
        },
    }
}

async fn put_document(
    client: &Client,
    id: &str,
    (document, base): (&ConfigDocument, u64),
    meta: &Value,
) -> Result<Outcome> {
    let mut body = serde_json::to_value(document).unwrap_or_default();
    body["metadata"] = meta.clone();
    body["expectedVersion"] = base.into();
    write(
        client,
        Method::PUT,
        &format!("/api/v1/configs/{}", segment(id)),
        &body,
    )
    .await
}

async fn put_schema(client: &Client, id: &str, schema: &Value, meta: &Value) -> Result<Outcome> {
    let body = json!({"schema": schema, "metadata": meta});
    let path = format!("/api/v1/configs/{}/schema", segment(id));
    write(client, Method::PUT, &path, &body).await
}

pub async fn put_flag(
    client: &Client,
    key: &str,
    definition: &FlagDefinition,
    base: u64,
    meta: &Value,
) -> Result<Outcome> {
    let mut body = serde_json::to_value(definition).unwrap_or_default();
    body["metadata"] = meta.clone();
    body["expectedVersion"] = base.into();
    let path = format!("/api/v1/feature-flags/{}", segment(key));
    write(client, Method::PUT, &path, &body).await
}

pub async fn delete(
    client: &Client,
    kind: Kind,
    id: &str,
    base: u64,
    meta: &Value,
) -> Result<Outcome> {
    let path = match kind {
        Kind::Flag => format!("/api/v1/feature-flags/{}", segment(id)),
        _ => format!("/api/v1/configs/{}", segment(id)),
    };
    let body = json!({"metadata": meta, "expectedVersion": base});
    match write(client, Method::DELETE, &path, &body).await? {
        Outcome::Written(_) => Ok(Outcome::Deleted),
        other => Ok(other),
    }
}

/// A write's answer: 202 is a change request, anything else a version.
async fn write(client: &Client, method: Method, path: &str, body: &Value) -> Result<Outcome> {
    let answer = client.call(method, path, &[], Some(body)).await?;
    if answer.status == 202 {
        let id = answer.body["id"].as_str().unwrap_or_default().to_owned();
        return Ok(Outcome::Pending(id));
    }
    Ok(Outcome::Written(
        answer.body["version"].as_u64().unwrap_or(0),
    ))
}

//! Config commands: get, set, list, versions, rollback, audit, effective.

use std::path::PathBuf;

use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Failure, Result, segment};
use super::output::{self, cell, short, when};
use super::{Common, Context, metadata, read_document};

pub use super::diff::{Diff, diff};
pub use super::drift::{Drift, drift};

/// The members of a version that make up its document (what `PUT` takes besides metadata).
pub(crate) const DOCUMENT: [&str; 4] = ["config", "overrides", "canary", "abTest"];

#[derive(Debug, Args)]
pub struct Get {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    /// An older version instead of the current one.
    #[arg(long)]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Set {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    /// The document (JSON or YAML; `-` for stdin): `config`, `overrides`, `canary`, `abTest`.
    /// With `--env`, the override object of that environment alone.
    #[arg(short, long)]
    pub file: PathBuf,
    /// Replace only this environment's override, keeping the rest of the current version.
    #[arg(long)]
    pub env: Option<String>,
    /// Why (recorded in the audit trail).
    #[arg(short, long)]
    pub message: Option<String>,
    /// Write only if this is still the live version (0: only if the config does not exist).
    #[arg(long)]
    pub expected_version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct List {
    #[command(flatten)]
    pub common: Common,
    /// Only ids starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct Versions {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct Rollback {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    /// The version to copy.
    pub version: u64,
    #[arg(short, long)]
    pub message: Option<String>,
    #[arg(long)]
    pub expected_version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Audit {
    #[command(flatten)]
    pub common: Common,
    /// One config's records; every record when left out.
    pub id: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct Effective {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    #[arg(long)]
    pub env: String,
    /// The assignment key (a user or request id) that picks canary and A/B variant.
    #[arg(long, conflicts_with = "instance")]
    pub key: Option<String>,
    /// The instance asking (in environments that require deployments, its assigned version).
    #[arg(long)]
    pub instance: Option<String>,
    /// Replace secret references by their values (printed!).
    #[arg(long)]
    pub resolve_secrets: bool,
}

pub async fn get(ctx: &Context, args: Get) -> Result<()> {
    let id = segment(&args.id);
    let path = match args.version {
        Some(n) => format!("/api/v1/configs/{id}/versions/{n}"),
        None => format!("/api/v1/configs/{id}"),
    };
    let version = ctx.client.get(&path, &[]).await?;
    output::show(ctx.format, &version, |v| {
        let mut text = format!(
            "{} version {}  {}  {}  {}\n",
            output::paint(output::BOLD, &cell(v, "configId")),
            cell(v, "version"),
            when(v, "createdAt"),
            cell(&v["metadata"], "actor"),
            short(&cell(v, "checksum")),
        );
        if let Some(message) = v["metadata"].get("message").and_then(Value::as_str) {
            text.push_str(&format!("  {message}\n"));
        }
        text.push_str(&serde_yaml_ng::to_string(&document(v)).unwrap_or_default());
        text
    })
}

/// The document of a version: `config`, `overrides`, `canary`, `abTest` (those present).
pub(crate) fn document(version: &Value) -> Value {
    let mut document = Map::new();
    for key in DOCUMENT {
        if let Some(value) = version.get(key).filter(|v| !v.is_null()) {
            document.insert(key.into(), value.clone());
        }
    }
    Value::Object(document)
}

pub async fn set(ctx: &Context, args: Set) -> Result<()> {
    let input = read_document(&args.file)?;
    let path = format!("/api/v1/configs/{}", segment(&args.id));
    let (mut body, expected) = match &args.env {
        None => (input, args.expected_version),
        Some(env) => {
            let current = ctx.client.get(&path, &[]).await?;
            let mut body = document(&current);
            let overrides = body
                .as_object_mut()
                .expect("a document is an object")
                .entry("overrides")
                .or_insert_with(|| json!({}));
            overrides[env.as_str()] = input;
            let expected = args.expected_version.or(current["version"].as_u64());
            (body, expected)
        }
    };
    let Some(object) = body.as_object_mut() else {
        return Err(Failure::usage("the document must be an object"));
    };
    object
        .entry("metadata")
        .or_insert_with(|| metadata(args.message.as_deref()));
    if let Some(expected) = expected {
        object.insert("expectedVersion".into(), expected.into());
    }
    let answer = ctx
        .client
        .call(Method::PUT, &path, &[], Some(&body))
        .await?;
    written(ctx, &answer.body, answer.status)
}

/// The answer to a write: a new version (201), or a change request awaiting approval (202).
pub(crate) fn written(ctx: &Context, body: &Value, status: u16) -> Result<()> {
    output::show(ctx.format, body, |v| {
        if status == 202 {
            return change_request_line(v);
        }
        let subject = v.get("configId").or(v.get("flagKey")).or(v.get("name"));
        let subject = subject.and_then(Value::as_str).unwrap_or("-");
        let rollback = match v.get("rollbackOf") {
            Some(of) => format!(" (rollback of {of})"),
            None => String::new(),
        };
        format!(
            "{subject}: version {}{rollback} written, checksum {}\n",
            cell(v, "version"),
            short(&cell(v, "checksum"))
        )
    })
}

pub(crate) fn change_request_line(request: &Value) -> String {
    format!(
        "change request {} {}: needs {} approval(s) for {} (summit-config approve {})\n",
        cell(request, "id"),
        cell(request, "status"),
        cell(request, "requiredApprovals"),
        cell(request, "environments"),
        cell(request, "id"),
    )
}

pub async fn list(ctx: &Context, args: List) -> Result<()> {
    let query: Vec<_> = args.prefix.map(|p| ("prefix", p)).into_iter().collect();
    let configs = ctx.client.get("/api/v1/configs", &query).await?;
    output::show(ctx.format, &configs, |v| {
        let rows = output::items(v, "items").into_iter().map(|c| {
            [
                cell(&c, "configId"),
                cell(&c, "version"),
                when(&c, "updatedAt"),
                short(&cell(&c, "checksum")),
            ]
        });
        output::table(["CONFIG", "VERSION", "UPDATED", "CHECKSUM"], rows)
    })
}

pub async fn versions(ctx: &Context, args: Versions) -> Result<()> {
    let path = format!("/api/v1/configs/{}/versions", segment(&args.id));
    let versions = ctx
        .client
        .get(&path, &[("limit", args.limit.to_string())])
        .await?;
    output::show(ctx.format, &versions, |v| {
        let rows = output::items(v, "items").into_iter().map(|version| {
            [
                cell(&version, "version"),
                when(&version, "createdAt"),
                cell(&version["metadata"], "actor"),
                cell(&version, "rollbackOf"),
                cell(&version["metadata"], "message"),
            ]
        });
        output::table(
            ["VERSION", "CREATED", "ACTOR", "ROLLBACK OF", "MESSAGE"],
            rows,
        )
    })
}

pub async fn rollback(ctx: &Context, args: Rollback) -> Result<()> {
    let path = format!("/api/v1/configs/{}/rollback", segment(&args.id));
    let mut body = json!({
        "targetVersion": args.version,
        "metadata": metadata(args.message.as_deref()),
    });
    if let Some(expected) = args.expected_version {
        body["expectedVersion"] = expected.into();
    }
    let answer = ctx
        .client
        .call(Method::POST, &path, &[], Some(&body))
        .await?;
    written(ctx, &answer.body, answer.status)
}

pub async fn audit(ctx: &Context, args: Audit) -> Result<()> {
    let path = match &args.id {
        Some(id) => format!("/api/v1/configs/{}/audit", segment(id)),
        None => "/api/v1/audit".into(),
    };
    let records = ctx
        .client
        .get(&path, &[("limit", args.limit.to_string())])
        .await?;
    output::show(ctx.format, &records, |v| {
        let rows = output::items(v, "items").into_iter().map(|record| {
            let subject = record.get("configId").or(record.get("flagKey"));
            [
                cell(&record, "id"),
                when(&record, "at"),
                cell(&record, "actor"),
                cell(&record, "action"),
                subject.and_then(Value::as_str).unwrap_or("-").to_owned(),
                cell(&record, "version"),
                cell(&record, "environments"),
                cell(&record, "message"),
            ]
        });
        let header = [
            "ID",
            "AT",
            "ACTOR",
            "ACTION",
            "SUBJECT",
            "VERSION",
            "ENVIRONMENTS",
            "MESSAGE",
        ];
        output::table(header, rows)
    })
}

pub async fn effective(ctx: &Context, args: Effective) -> Result<()> {
    let path = format!("/api/v1/configs/{}/effective", segment(&args.id));
    let mut query = vec![("environment", args.env)];
    query.extend(args.key.map(|key| ("assignmentKey", key)));
    query.extend(args.instance.map(|instance| ("instanceId", instance)));
    if args.resolve_secrets {
        query.push(("resolveSecrets", "true".into()));
    }
    let view = ctx.client.get(&path, &query).await?;
    output::show(ctx.format, &view, |v| {
        let assignment = &v["assignment"];
        format!(
            "{} version {} in {}  canary: {}  variant: {}  {}\n{}",
            output::paint(output::BOLD, &cell(v, "configId")),
            cell(v, "version"),
            cell(v, "environment"),
            cell(assignment, "canary"),
            cell(assignment, "variant"),
            short(&cell(v, "checksum")),
            serde_yaml_ng::to_string(&v["effectiveConfig"]).unwrap_or_default()
        )
    })
}

//! Change requests: `pending`, `approve`, `reject`, `cancel`.

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Result, segment};
use super::configs::change_request_line;
use super::output::{self, cell, when};
use super::{Common, Context};

#[derive(Debug, Args)]
pub struct Pending {
    #[command(flatten)]
    pub common: Common,
    /// Requests in every status, not only pending ones.
    #[arg(long)]
    pub all: bool,
    /// Only requests touching this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only requests for this config.
    #[arg(long, conflicts_with = "flag")]
    pub config: Option<String>,
    /// Only requests for this flag.
    #[arg(long)]
    pub flag: Option<String>,
}

#[derive(Debug, Args)]
pub struct Approve {
    #[command(flatten)]
    pub common: Common,
    pub request: String,
    /// Apply the change as well once this approval completes it.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct Reject {
    #[command(flatten)]
    pub common: Common,
    pub request: String,
    #[arg(long)]
    pub reason: String,
}

pub async fn pending(ctx: &Context, args: Pending) -> Result<()> {
    let mut query = Vec::new();
    if args.all {
        query.push(("status", "all".to_owned()));
    }
    query.extend(args.env.map(|env| ("environment", env)));
    query.extend(args.config.map(|id| ("configId", id)));
    query.extend(args.flag.map(|key| ("flagKey", key)));
    let requests = ctx.client.get("/api/v1/change-requests", &query).await?;
    output::show(ctx.format, &requests, |v| {
        let rows = output::items(v, "items").into_iter().map(|request| {
            let subject = request.get("configId").or(request.get("flagKey"));
            [
                cell(&request, "id"),
                cell(&request, "status"),
                subject.and_then(Value::as_str).unwrap_or("-").to_owned(),
                cell(&request["operation"], "type"),
                cell(&request, "environments"),
                approvals(&request),
                cell(&request, "requestedBy"),
                when(&request, "createdAt"),
                cell(&request, "message"),
            ]
        });
        let header = [
            "ID",
            "STATUS",
            "SUBJECT",
            "OPERATION",
            "ENVIRONMENTS",
            "APPROVALS",
            "REQUESTED BY",
            "CREATED",
            "MESSAGE",
        ];
        output::table(header, rows)
    })
}

fn approvals(request: &Value) -> String {
    let given = request["approvals"].as_array().map_or(0, Vec::len);
    format!("{given}/{}", cell(request, "requiredApprovals"))
}

pub async fn approve(ctx: &Context, args: Approve) -> Result<()> {
    let body = json!({ "metadata": super::metadata(None) });
    let mut request = act(&ctx.client, &args.request, "approve", &body).await?;
    if args.apply && request["status"] == "approved" {
        request = act(&ctx.client, &args.request, "apply", &body).await?;
    }
    output::show(ctx.format, &request, describe)
}

/// `POST /api/v1/change-requests/{id}/{action}`: the request as it stands afterwards.
pub(super) async fn act(
    client: &Client,
    request: &str,
    action: &str,
    body: &Value,
) -> Result<Value> {
    let path = format!("/api/v1/change-requests/{}/{action}", segment(request));
    Ok(client
        .call(Method::POST, &path, &[], Some(body))
        .await?
        .body)
}

#[derive(Debug, Args)]
pub struct Cancel {
    #[command(flatten)]
    pub common: Common,
    pub request: String,
    /// Why (recorded on the request).
    #[arg(long)]
    pub reason: Option<String>,
}

/// Withdraws one's own pending request.
pub async fn cancel(ctx: &Context, args: Cancel) -> Result<()> {
    let mut body = json!({ "metadata": super::metadata(None) });
    if let Some(reason) = args.reason {
        body["reason"] = reason.into();
    }
    let request = act(&ctx.client, &args.request, "cancel", &body).await?;
    output::show(ctx.format, &request, describe)
}

pub async fn reject(ctx: &Context, args: Reject) -> Result<()> {
    let body = json!({ "reason": args.reason, "metadata": super::metadata(None) });
    let request = act(&ctx.client, &args.request, "reject", &body).await?;
    output::show(ctx.format, &request, describe)
}

fn describe(request: &Value) -> String {
    match request["status"].as_str() {
        Some("pending") => change_request_line(request),
        Some("applied") => format!(
            "change request {} applied: version {}\n",
            cell(request, "id"),
            cell(request, "appliedVersion")
        ),
        _ => format!(
            "change request {} {} ({} approvals)\n",
            cell(request, "id"),
            cell(request, "status"),
            approvals(request)
        ),
    }
}

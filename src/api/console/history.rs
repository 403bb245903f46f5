//! A config's history: the timeline (actor, message, approvals, rollbacks), a side-by-side
//! diff of two versions (whole documents, or one environment's effective config), and rollback
//! with a confirmation.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use similar::{Algorithm, DiffOp, capture_diff_slices};

use super::configs::{config_id, config_nav, environment, given, json};
use super::page::{PageResult, Viewer, column_heads, empty, time};
use crate::api::http::AppState;
use crate::core::approvals::model::{Approval, ChangeRequestStatus, Subject};
use crate::core::configs::EffectiveQuery;
use crate::core::effective::AssignmentInput;
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::ConfigVersion;
use crate::core::ports::ChangeRequestQuery;
use crate::core::service::Written;

const TIMELINE_PAGE: u32 = 100;

async fn versions(
    state: &AppState,
    viewer: &Viewer,
    id: &ConfigId,
) -> PageResult<Vec<ConfigVersion>> {
    Ok(state
        .service
        .versions(&viewer.caller, id, None, TIMELINE_PAGE)
        .await?
        .items)
}

pub async fn timeline(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let id = config_id(&raw)?;
    let versions = versions(&state, &viewer, &id).await?;
    // Approvals are on the change requests that made a version.
    let approved: BTreeMap<u64, Vec<Approval>> = state
        .service
        .change_requests(
            &viewer.caller,
            ChangeRequestQuery {
                status: Some(ChangeRequestStatus::Applied),
                environment: None,
                subject: Some(Subject::Config(id.clone())),
                limit: TIMELINE_PAGE,
                prefixes: Vec::new(),
            },
        )
        .await?
        .into_iter()
        .filter_map(|request| Some((request.applied_version?, request.approvals)))
        .collect();
    let may_write = viewer.may_write(id.as_str());
    let body = html! {
        (config_nav(&id, &viewer))
        ol.timeline #timeline reversed data-watch={ "/ui/events?configId=" (id) } {
            @for (n, v) in versions.iter().enumerate() {
                li {
                    h2 { "Version " (v.version) }
                    p.meta { (time(v.created_at)) " · " strong { (v.metadata.actor) }
                        @if let Some(on_behalf) = &v.metadata.on_behalf_of { " for " (on_behalf) } }
                    p { (v.metadata.message.as_deref().unwrap_or("No message.")) }
                    @if let Some(target) = v.rollback_of { p.badge { "Rollback to version " (target) } }
                    @if let Some(approvals) = approved.get(&v.version) {
                        p { "Approved by "
                            @for (n, a) in approvals.iter().enumerate() {
                                @if n > 0 { ", " } (a.actor) " (" (time(a.at)) ")"
                            }
                        }
                    }
                    p.actions {
                        @if v.version > 1 {
                            a href={ "/ui/configs/" (id) "/diff?from=" (v.version - 1) "&to=" (v.version) } { "Changes in this version" }
                        }
                        @if may_write && n > 0 {
                            " · " a href={ "/ui/configs/" (id) "/rollback?to=" (v.version) } { "Roll back to this version" }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page(&format!("History of {id}"), body))
}

#[derive(Deserialize, Default)]
pub struct DiffForm {
    from: Option<String>,
    to: Option<String>,
    environment: Option<String>,
}

fn version_field(field: &Option<String>, name: &str) -> PageResult<Option<u64>> {
    given(field)
        .map(|raw| {
            raw.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                Error::invalid(name, format!("{name} must be a version number")).into()
            })
        })
        .transpose()
}

pub async fn diff(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(form): Query<DiffForm>,
) -> PageResult {
    let id = config_id(&raw)?;
    let environment = environment(&form.environment)?;
    let from = version_field(&form.from, "from")?;
    let to = version_field(&form.to, "to")?;
    // The same core call as `GET /api/v1/configs/{id}/diff`: it checks access and versions.
    let patch = state
        .service
        .diff(&viewer.caller, &id, from, to, environment.as_ref())
        .await?;
    let (old, new) = match &environment {
        Some(env) => (
            effective_at(&state, &viewer, &id, patch.from, env).await?,
            effective_at(&state, &viewer, &id, patch.to, env).await?,
        ),
        None => (
            document_at(&state, &viewer, &id, patch.from).await?,
            document_at(&state, &viewer, &id, patch.to).await?,
        ),
    };
    let versions = versions(&state, &viewer, &id).await?;
    let picker = |name: &str, chosen: u64| {
        html! {
            select name=(name) {
                @for v in &versions { option value=(v.version) selected[v.version == chosen] { "v" (v.version) } }
            }
        }
    };
    let what = match &environment {
        Some(env) => format!("the effective config of {env}"),
        None => "the whole document".to_owned(),
    };
    let body = html! {
        (config_nav(&id, &viewer))
        form.filters method="get" action={ "/ui/configs/" (id) "/diff" } {
            label { "From " (picker("from", patch.from)) }
            label { "To " (picker("to", patch.to)) }
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="whole document"; }
            button type="submit" { "Compare" }
        }
        p { "Comparing " (what) " at version " (patch.from) " (left) and version " (patch.to) " (right)." }
        (side_by_side(&old, &new))
        details {
            summary { "As an RFC 6902 JSON Patch" }
            (json(&patch.patch))
        }
    };
    Ok(viewer.page(&format!("Diff of {id}"), body))
}

async fn document_at(
    state: &AppState,
    viewer: &Viewer,
    id: &ConfigId,
    version: u64,
) -> PageResult<Value> {
    let stored = state.service.version(&viewer.caller, id, version).await?;
    serde_json::to_value(&stored.document).map_err(|e| Error::internal(e.to_string()).into())
}

async fn effective_at(
    state: &AppState,
    viewer: &Viewer,
    id: &ConfigId,
    version: u64,
    env: &Environment,
) -> PageResult<Value> {
    let query = EffectiveQuery {
        environment: Some(env.clone()),
        assignment: AssignmentInput::None,
        resolve_secrets: false,
        instance_id: None,
    };
    Ok(state
        .service
        .effective_at(&viewer.caller, id, version, &query)
        .await?
        .view
        .value())
}

/// Two pretty-printed documents line by line: removed lines red on the left, added green on
/// the right (and marked with − and + for readers who do not see colour).
pub fn side_by_side(old: &Value, new: &Value) -> Markup {
    let old_text = serde_json::to_string_pretty(old).unwrap_or_default();
    let new_text = serde_json::to_string_pretty(new).unwrap_or_default();
    let old_lines: Vec<&str> = old_text.lines().collect();
    let new_lines: Vec<&str> = new_text.lines().collect();
    let ops = capture_diff_slices(Algorithm::Myers, &old_lines, &new_lines);
    let mut rows: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    for op in ops {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for i in 0..len {
                    rows.push((
                        Some(old_lines[old_index + i]),
                        Some(new_lines[new_index + i]),
                    ));
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                rows.extend(
                    old_lines[old_index..old_index + old_len]
                        .iter()
                        .map(|l| (Some(*l), None)),
                );
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                rows.extend(
                    new_lines[new_index..new_index + new_len]
                        .iter()
                        .map(|l| (None, Some(*l))),
                );
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                for i in 0..old_len.max(new_len) {
                    rows.push((
                        (i < old_len).then(|| old_lines[old_index + i]),
                        (i < new_len).then(|| new_lines[new_index + i]),
                    ));
                }
            }
        }
    }
    let changed = rows.iter().filter(|(l, r)| l != r).count();
    html! {
        @if changed == 0 { (empty("No differences: both sides are the same.")) }
        div.diff-wrap {
            table.diff {
                caption { (changed) " changed lines" }
                (column_heads(&["Before", "After"]))
                tbody {
                    @for (left, right) in &rows {
                        @let same = left == right;
                        tr {
                            td class=(if same { "same" } else if left.is_some() { "removed" } else { "blank" }) {
                                @if let Some(line) = left { @if !same { span.mark aria-label="removed" { "−" } } code { (line) } }
                            }
                            td class=(if same { "same" } else if right.is_some() { "added" } else { "blank" }) {
                                @if let Some(line) = right { @if !same { span.mark aria-label="added" { "+" } } code { (line) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct RollbackQuery {
    to: Option<String>,
}

pub async fn confirm_rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(query): Query<RollbackQuery>,
) -> PageResult {
    let id = config_id(&raw)?;
    let versions = versions(&state, &viewer, &id).await?;
    let latest = versions
        .first()
        .ok_or_else(|| Error::not_found("config", id.as_str()))?;
    let target = version_field(&query.to, "to")?;
    let target_version = match target {
        Some(t) => Some(state.service.version(&viewer.caller, &id, t).await?),
        None => None,
    };
    let body = html! {
        (config_nav(&id, &viewer))
        form.filters method="get" action={ "/ui/configs/" (id) "/rollback" } {
            label { "Version to return to "
                select name="to" {
                    @for v in versions.iter().skip(1) { option value=(v.version) selected[Some(v.version) == target] { "v" (v.version) " — " (v.metadata.message.as_deref().unwrap_or("no message")) } }
                }
            }
            button type="submit" { "Show what changes" }
        }
        @if let Some(target) = &target_version {
            p { "Rolling back writes version " (latest.version + 1) ", equal to version " (target.version) ". Left: now (v" (latest.version) "); right: after." }
            (side_by_side(
                &serde_json::to_value(&latest.document).unwrap_or_default(),
                &serde_json::to_value(&target.document).unwrap_or_default(),
            ))
            form.card method="post" action={ "/ui/configs/" (id) "/rollback" } {
                (viewer.form_fields())
                input type="hidden" name="target" value=(target.version);
                input type="hidden" name="expected" value=(latest.version);
                p { label for="message" { "Why (recorded in the history and audit)" }
                    input #message type="text" name="message" required; }
                p { label { input type="checkbox" name="confirm" value="yes" required; " I want version " (latest.version + 1) " to equal version " (target.version) } }
                button.danger type="submit" { "Roll back to version " (target.version) }
            }
        } @else {
            (empty("Choose the version to return to."))
        }
    };
    Ok(viewer.page(&format!("Roll back {id}"), body))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    target: String,
    #[serde(default)]
    expected: String,
    message: Option<String>,
    actor: Option<String>,
    confirm: Option<String>,
}

pub async fn rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    axum::Form(form): axum::Form<RollbackForm>,
) -> PageResult {
    let id = config_id(&raw)?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(Error::invalid("confirm", "tick the confirmation to roll back").into());
    }
    let target = version_field(&Some(form.target), "target")?
        .ok_or_else(|| Error::invalid("target", "choose the version to return to"))?;
    let expected = version_field(&Some(form.expected), "expected")?;
    let metadata = viewer.metadata(form.actor, form.message);
    let written = state
        .service
        .rollback(&viewer.caller, &id, target, metadata, expected)
        .await?;
    let (status, title, body) = match written {
        Written::Done(version) => (
            StatusCode::CREATED,
            "Rolled back",
            html! { p.notice role="status" { "Version " (version.version) " of " (id) " now equals version " (target) "." }
            p { a href={ "/ui/configs/" (id) "/history" } { "See the history" } } },
        ),
        Written::Pending(request) => (
            StatusCode::ACCEPTED,
            "Waiting for approval",
            html! { p.notice role="status" { "The rollback touches a protected environment: change request " (request.id) " waits for " (request.required_approvals) " approvals." }
            p { a href="/ui/approvals" { "See the approvals queue" } } },
        ),
    };
    let mut response = viewer.page(title, body);
    *response.status_mut() = status;
    Ok(response)
}

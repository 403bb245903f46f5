//! Deployments: the list, one deployment with live progress (percent, step, gate measurements,
//! events) refreshed on each change event of its config, and the operator's actions.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::configs::{environment, given};
use super::page::{PageResult, Viewer, column_heads, empty, time};
use crate::api::http::AppState;
use crate::core::deployments::model::{Deployment, LogEntry};
use crate::core::deployments::transitions::Action;
use crate::core::ids::ConfigId;
use crate::core::ports::DeploymentQuery;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    config_id: Option<String>,
    environment: Option<String>,
    active: Option<String>,
}

/// A serialised enum's name (`rolling_back`, `health`).
fn name_of<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let config_id = given(&query.config_id).map(ConfigId::parse).transpose()?;
    let environment = environment(&query.environment)?;
    let active_only = query.active.is_some();
    let page = state
        .deployments
        .list(
            &viewer.caller,
            DeploymentQuery {
                config_id: config_id.clone(),
                environment: environment.clone(),
                active_only,
                before: None,
                limit: 0,
            },
            Some(100),
        )
        .await?;
    let body = html! {
        form.filters method="get" action="/ui/deployments" {
            label { "Config " input type="text" name="configId" value=[config_id.as_ref().map(|c| c.as_str())] placeholder="any"; }
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="any"; }
            label { input type="checkbox" name="active" value="1" checked[active_only]; " In progress only" }
            button type="submit" { "Show" }
        }
        @if page.items.is_empty() {
            (empty("No deployments match. Environments that require deployments release versions through them."))
        } @else {
            table {
                (column_heads(&["Deployment", "Config", "Environment", "Version", "State", "Progress", "Started"]))
                tbody {
                    @for d in &page.items {
                        tr {
                            th scope="row" { a href={ "/ui/deployments/" (d.id) } { (d.id[..8.min(d.id.len())]) } }
                            td { a href={ "/ui/configs/" (d.config_id) } { (d.config_id) } }
                            td { (d.environment) }
                            td { "v" (d.previous_version) " → v" (d.version) }
                            td { span class={ "state " (d.state.as_str()) } { (d.state.as_str()) } }
                            td { (percent(d.percent)) }
                            td { (time(d.created_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("Deployments", body))
}

fn percent(value: f64) -> String {
    format!("{}%", (value * 100.0).round() / 100.0)
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let (deployment, log) = with_log(&state, &viewer, &id).await?;
    let may_act = viewer.may_write(deployment.config_id.as_str())
        && viewer
            .caller
            .require_environment(deployment.environment.as_str())
            .is_ok();
    let title = format!(
        "Deploying {} v{} to {}",
        deployment.config_id, deployment.version, deployment.environment
    );
    let body = html! {
        dl.facts {
            dt { "Strategy" } dd { (deployment.strategy_name.as_deref().unwrap_or("given inline")) }
            dt { "Started" } dd { (time(deployment.created_at)) " by " (deployment.created_by) }
            dt { "Message" } dd { (deployment.metadata.message.as_deref().unwrap_or("No message.")) }
            dt { "Replaces" } dd { "version " (deployment.previous_version) }
        }
        div #progress aria-live="polite"
            data-live={ "/ui/deployments/" (deployment.id) "/progress" }
            data-watch={ "/ui/events?configId=" (deployment.config_id) } {
            (progress_of(&deployment, &log))
        }
        @if may_act {
            section aria-labelledby="act" {
                h2 #act { "Act on it" }
                div.actions {
                    @for (action, label, why) in ACTIONS {
                        form.inline method="post" action={ "/ui/deployments/" (deployment.id) "/" (action) } {
                            (viewer.form_fields())
                            label { "Why " input type="text" name="message" placeholder=(why); }
                            button type="submit" class=(if *action == "promote" || *action == "resume" { "primary" } else { "danger" }) { (label) }
                        }
                    }
                }
                p.hint { "An action the deployment's state does not allow is refused with a sentence saying why." }
            }
        }
    };
    Ok(viewer.page(&title, body))
}

const ACTIONS: &[(&str, &str, &str)] = &[
    ("promote", "Promote to every instance", "gates look good"),
    ("pause", "Pause", "investigating"),
    ("resume", "Resume", "all clear"),
    ("abort", "Abort", "bad version"),
];

/// A deployment and its events, as the viewer may read them.
async fn with_log(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> PageResult<(Deployment, Vec<LogEntry>)> {
    let deployment = state.deployments.get(&viewer.caller, id).await?;
    let log = state.deployments.log(&viewer.caller, id).await?;
    Ok((deployment, log))
}

/// The part of the page that changes: fetched again by the script on each change event.
pub async fn progress(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let (deployment, log) = with_log(&state, &viewer, &id).await?;
    Ok(Html(progress_of(&deployment, &log).into_string()).into_response())
}

fn progress_of(d: &Deployment, log: &[LogEntry]) -> Markup {
    html! {
        p.state-line {
            "State " span class={ "state " (d.state.as_str()) } data-state=(d.state.as_str()) { (d.state.as_str()) }
            " · step " (d.step) " of " (d.batches)
            " · " (d.targets.len()) " of " (d.instances.len()) " instances targeted"
            @if let Some(until) = d.bake_until { " · baking until " (time(until)) }
        }
        label for="percent" { "Instances on the new version: " strong { (percent(d.percent)) } }
        progress #percent max="100" value=(d.percent) { (percent(d.percent)) }
        @if let Some(reason) = &d.reason { p.notice { (reason) } }
        h2 { "Events" }
        @if log.is_empty() {
            (empty("No events yet."))
        } @else {
            table {
                (column_heads(&["When", "Move", "Step", "By", "Gate measured", "Reason"]))
                tbody {
                    @for e in log.iter().rev() {
                        tr {
                            td { (time(e.at)) }
                            td { (e.from.map_or("start", |s| s.as_str())) " → " (e.to.as_str()) }
                            td { (e.step) " (" (percent(e.percent)) ")" }
                            td { (e.actor) " (" (name_of(&e.triggered_by)) ")" }
                            td {
                                @match &e.measured {
                                    Some(m) => {
                                        (m.acked) "/" (m.targeted) " acknowledged, " (m.unhealthy) " unhealthy"
                                        @if let Some(rate) = m.error_rate { ", error rate " (rate) }
                                        @if let Some(p99) = m.latency_p99_ms { ", p99 " (p99) " ms" }
                                    }
                                    None => "—",
                                }
                            }
                            td { (e.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    actor: Option<String>,
    message: Option<String>,
}

pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let action = Action::parse(&action)?;
    let metadata = viewer.metadata(form.actor, form.message);
    let deployment = state
        .deployments
        .act(&viewer.caller, &id, action, metadata)
        .await?;
    let body = html! {
        p.notice role="status" { "The deployment is now " strong { (deployment.state.as_str()) } "." }
        p { a href={ "/ui/deployments/" (deployment.id) } { "Back to the deployment" } }
    };
    Ok(viewer.page("Done", body))
}

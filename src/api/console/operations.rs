//! What operators watch: drift per environment (the instance table) and the audit trail.

use axum::extract::{Path, Query, State};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::configs::{config_id, config_nav, environment, given};
use super::page::{PageResult, Viewer, column_heads, empty, time};
use crate::api::http::AppState;
use crate::core::drift::{ConfigDrift, DriftStatus};
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::ports::AuditSubject;

#[derive(Deserialize, Default)]
pub struct DriftQuery {
    environment: Option<String>,
}

pub async fn drift(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let report = state.service.drift_report(&viewer.caller).await?;
    let s = &report.summary;
    let body = html! {
        p { strong { (s.in_sync) } " instances in sync, " strong { (s.drifted) } " drifted, " strong { (s.stale) } " stale." }
        @if report.configs.is_empty() {
            (empty("No instance has reported what it applied yet."))
        }
        @for config in &report.configs {
            (drift_table(config, true))
        }
    };
    Ok(viewer.page("Drift", body))
}

pub async fn config_drift(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(query): Query<DriftQuery>,
) -> PageResult {
    let id = config_id(&raw)?;
    let environment = environment(&query.environment)?;
    let drift = state
        .service
        .drift(&viewer.caller, &id, environment.as_ref())
        .await?;
    let body = html! {
        (config_nav(&id, &viewer))
        form.filters method="get" action={ "/ui/configs/" (id) "/drift" } {
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="every one"; }
            button type="submit" { "Show" }
        }
        (drift_table(&drift, false))
    };
    Ok(viewer.page(&format!("Drift of {id}"), body))
}

fn drift_table(drift: &ConfigDrift, titled: bool) -> Markup {
    let mut environments: Vec<&str> = drift
        .instances
        .iter()
        .map(|i| i.environment.as_str())
        .collect();
    environments.dedup();
    environments.sort_unstable();
    environments.dedup();
    let now = Utc::now();
    html! {
        section {
            @if titled {
                h2 { a href={ "/ui/configs/" (drift.config_id) "/drift" } { (drift.config_id) } " (version " (drift.version) ")" }
            }
            @if drift.instances.is_empty() {
                (empty("No instance has reported this config."))
            }
            @for env in &environments {
                table {
                    caption { "Environment " (env) }
                    (column_heads(&["Instance", "Status", "Running", "Last report"]))
                    tbody {
                        @for i in drift.instances.iter().filter(|i| i.environment == *env) {
                            tr {
                                th scope="row" { (i.instance_id) }
                                td { span class={ "state " (i.status.as_str()) } { (status_words(i.status)) } }
                                td { "v" (i.version) " " code { (&i.checksum[..12.min(i.checksum.len())]) } }
                                td { (time(i.reported_at)) " (" (ago(now - i.reported_at)) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn status_words(status: DriftStatus) -> &'static str {
    match status {
        DriftStatus::InSync => "in sync",
        DriftStatus::Drifted => "drifted",
        DriftStatus::Stale => "stale",
    }
}

/// "3 min ago", for how long an instance has been in its state.
pub fn ago(elapsed: chrono::Duration) -> String {
    let secs = elapsed.num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    config_id: Option<String>,
    flag_key: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    before: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let subject = match (given(&query.config_id), given(&query.flag_key)) {
        (Some(id), _) => Some(AuditSubject::Config(ConfigId::parse(id)?)),
        (None, Some(key)) => Some(AuditSubject::Flag(FlagKey::parse_field(key, "flagKey")?)),
        (None, None) => None,
    };
    let before = given(&query.before).and_then(|b| b.parse::<u64>().ok());
    let page = state
        .service
        .audit(&viewer.caller, subject, before, 100)
        .await?;
    let actor = given(&query.actor);
    let action = given(&query.action);
    let records: Vec<_> = page
        .items
        .iter()
        .filter(|r| actor.is_none_or(|a| r.actor.contains(a)))
        .filter(|r| action.is_none_or(|a| r.action.contains(a)))
        .collect();
    let older = page.next_cursor.map(|cursor| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("configId", &query.config_id),
            ("flagKey", &query.flag_key),
            ("actor", &query.actor),
            ("action", &query.action),
        ] {
            if let Some(value) = given(value) {
                link.append_pair(key, value);
            }
        }
        link.append_pair("before", &cursor.to_string());
        format!("/ui/audit?{}", link.finish())
    });
    let body = html! {
        form.filters method="get" action="/ui/audit" {
            label { "Config " input type="text" name="configId" value=[given(&query.config_id)] placeholder="every one"; }
            label { "Flag " input type="text" name="flagKey" value=[given(&query.flag_key)] placeholder="every one"; }
            label { "Actor contains " input type="text" name="actor" value=[actor]; }
            label { "Action contains " input type="text" name="action" value=[action] placeholder="e.g. rollback"; }
            button type="submit" { "Filter" }
        }
        @if records.is_empty() {
            (empty("No audit records match these filters."))
        } @else {
            table {
                (column_heads(&["When", "Actor", "Action", "Subject", "Environments", "Message"]))
                tbody {
                    @for r in &records {
                        tr {
                            td { (time(r.at)) }
                            td { (r.actor) @if let Some(o) = &r.on_behalf_of { " for " (o) } }
                            td { (r.action) }
                            td { (r.config_id) @if let Some(v) = r.version { " v" (v) } }
                            td { (r.environments.join(", ")) }
                            td { (r.message.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(older) = older { p { a href=(older) { "Older records" } } }
    };
    Ok(viewer.page("Audit", body))
}

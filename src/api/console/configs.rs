//! Configs: the list (by id prefix and environment), one config (current version, overrides,
//! canary, A/B test, schema, releases) and the effective preview.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::page::{PageResult, Viewer, column_heads, empty, time};
use crate::api::http::AppState;
use crate::core::configs::EffectiveQuery;
use crate::core::effective::AssignmentInput;
use crate::core::error::Error;
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::{ConfigDocument, ConfigVersion};

pub async fn home() -> Response {
    Redirect::to("/ui/configs").into_response()
}

/// At most this many configs are listed on one page.
const SHOWN: usize = 200;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    prefix: Option<String>,
    environment: Option<String>,
}

/// Non-empty text of an optional form field.
pub fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub fn environment(field: &Option<String>) -> PageResult<Option<Environment>> {
    Ok(given(field).map(Environment::parse).transpose()?)
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let prefix = given(&query.prefix);
    let environment = environment(&query.environment)?;
    let mut items = state.service.list_configs(&viewer.caller, prefix).await?;
    if let Some(env) = &environment {
        // Only configs that say something about the environment: an override, a canary or a test.
        let mut kept = Vec::new();
        for item in items {
            if kept.len() > SHOWN {
                break;
            }
            let latest = state
                .service
                .config(&viewer.caller, &item.config_id)
                .await?;
            if mentions(&latest.document, env.as_str()) {
                kept.push(item);
            }
        }
        items = kept;
    }
    // A page a browser can render: beyond it, a narrower prefix finds the rest.
    let more = items.len() > SHOWN;
    items.truncate(SHOWN);
    let env_query = environment
        .as_ref()
        .map(|e| format!("&environment={e}"))
        .unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/ui/configs" role="search" {
            label { "Id starts with " input type="search" name="prefix" value=[prefix]; }
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="any"; }
            button type="submit" { "Search" }
        }
        @if items.is_empty() {
            (empty("No configs match. Clear the filters, or create one with the CLI or the REST API."))
        } @else {
            @if more {
                p.notice { "Showing the first " (SHOWN) " matching configs: type more of the id to find the others." }
            }
            table {
                caption { (items.len()) " configs" }
                (column_heads(&["Config", "Version", "Updated", "Checksum", "Views"]))
                tbody {
                    @for item in &items {
                        tr {
                            th scope="row" { a href={ "/ui/configs/" (item.config_id) } { (item.config_id) } }
                            td { (item.version) }
                            td { (time(item.updated_at)) }
                            td { code { (&item.checksum[..12.min(item.checksum.len())]) } }
                            td {
                                a href={ "/ui/configs/" (item.config_id) "/history" } { "History" } " · "
                                a href={ "/ui/effective?configId=" (item.config_id) (env_query) } { "Effective" } " · "
                                a href={ "/ui/configs/" (item.config_id) "/drift" } { "Drift" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("Configs", body))
}

fn mentions(doc: &ConfigDocument, env: &str) -> bool {
    doc.overrides.contains_key(env)
        || doc.canary.as_ref().is_some_and(|c| c.environment == env)
        || doc
            .ab_test
            .as_ref()
            .is_some_and(|t| t.environment.as_deref().is_none_or(|e| e == env))
}

pub fn json(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { code { (text) } } }
}

pub fn config_id(raw: &str) -> PageResult<ConfigId> {
    Ok(ConfigId::parse(raw)?)
}

pub fn config_nav(id: &ConfigId, viewer: &Viewer) -> Markup {
    html! {
        nav.tabs aria-label="This config" {
            a href={ "/ui/configs/" (id) } { "Current" }
            a href={ "/ui/configs/" (id) "/history" } { "History" }
            a href={ "/ui/configs/" (id) "/diff" } { "Diff" }
            a href={ "/ui/effective?configId=" (id) } { "Effective" }
            a href={ "/ui/configs/" (id) "/drift" } { "Drift" }
            @if viewer.may_write(id.as_str()) {
                a href={ "/ui/configs/" (id) "/rollback" } { "Roll back" }
            }
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let id = config_id(&raw)?;
    let latest = state.service.config(&viewer.caller, &id).await?;
    let schema = match state.service.schema(&viewer.caller, &id).await {
        Ok(schema) => Some(schema),
        Err(Error::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let releases = state
        .deployments
        .releases(&viewer.caller, &id)
        .await
        .unwrap_or_default();
    let body = html! {
        (config_nav(&id, &viewer))
        (version_summary(&latest))
        section aria-labelledby="base" {
            h2 #base { "Base config" }
            (json(&latest.document.config))
        }
        (layers(&latest.document))
        @if !releases.is_empty() {
            section aria-labelledby="releases" {
                h2 #releases { "Released per environment" }
                table {
                    (column_heads(&["Environment", "Released", "Latest", "Deployment"]))
                    tbody {
                        @for release in &releases {
                            tr {
                                th scope="row" { (release.environment) }
                                td { "v" (release.released_version) }
                                td { "v" (release.latest_version) }
                                td {
                                    @if let Some(active) = &release.active_deployment {
                                        a href={ "/ui/deployments/" (active.id) } { "in progress (" (active.state.as_str()) ")" }
                                    } @else { "none in progress" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="schema" {
            h2 #schema { "Schema" }
            @match &schema {
                Some(schema) => { p { "Version " (schema.version) ", registered " (time(schema.created_at)) " by " (schema.metadata.actor) "." } (json(&schema.schema)) }
                None => (empty("No schema is registered for this config: any JSON is accepted.")),
            }
        }
    };
    Ok(viewer.page(&format!("Config {id}"), body))
}

fn version_summary(version: &ConfigVersion) -> Markup {
    html! {
        dl.facts {
            dt { "Version" } dd { (version.version) @if let Some(of) = version.rollback_of { " (a rollback to v" (of) ")" } }
            dt { "Written" } dd { (time(version.created_at)) " by " (version.metadata.actor) }
            dt { "Message" } dd { (version.metadata.message.as_deref().unwrap_or("(none)")) }
            dt { "Checksum" } dd { code { (version.checksum) } }
        }
    }
}

fn layers(doc: &ConfigDocument) -> Markup {
    html! {
        section aria-labelledby="overrides" {
            h2 #overrides { "Overrides" }
            @if doc.overrides.is_empty() {
                (empty("No environment overrides: every environment gets the base config."))
            }
            @for (env, patch) in &doc.overrides {
                h3 { (env) }
                (json(patch))
            }
        }
        section aria-labelledby="canary" {
            h2 #canary { "Canary" }
            @match &doc.canary {
                Some(canary) => {
                    p { (canary.traffic_percent) "% of " strong { (canary.environment) } " from " (time(canary.start_at))
                        @if let Some(end) = canary.end_at { " until " (time(end)) } " get this patch:" }
                    (json(&canary.config))
                }
                None => (empty("No canary.")),
            }
        }
        section aria-labelledby="abtest" {
            h2 #abtest { "A/B test" }
            @match &doc.ab_test {
                Some(test) => {
                    p { "Test " strong { (test.name) } " in " (test.environment.as_deref().unwrap_or("every environment")) ":" }
                    table {
                        (column_heads(&["Variant", "Weight", "Patch"]))
                        tbody { @for v in &test.variants { tr { th scope="row" { (v.name) } td { (v.weight) } td { (json(&v.config)) } } } }
                    }
                }
                None => (empty("No A/B test.")),
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveForm {
    config_id: Option<String>,
    environment: Option<String>,
    assignment_key: Option<String>,
    instance_id: Option<String>,
}

/// Pick a config, an environment and an assignment key or instance: the exact document and
/// which layers made it.
pub async fn effective(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(form): Query<EffectiveForm>,
) -> PageResult {
    let configs = state.service.list_configs(&viewer.caller, None).await?;
    let chosen = given(&form.config_id).map(ConfigId::parse).transpose()?;
    let environment = environment(&form.environment)?;
    let result = match &chosen {
        Some(id) => {
            let query = EffectiveQuery {
                environment: environment.clone(),
                assignment: match given(&form.assignment_key) {
                    Some(key) => AssignmentInput::key(key.to_owned())?,
                    None => AssignmentInput::None,
                },
                resolve_secrets: false,
                instance_id: given(&form.instance_id).map(str::to_owned),
            };
            let effective = state.service.effective(&viewer.caller, id, query).await?;
            let version = state
                .service
                .version(&viewer.caller, id, effective.version())
                .await?;
            Some((effective, version))
        }
        None => None,
    };
    let body = html! {
        form.filters method="get" action="/ui/effective" {
            label { "Config "
                select name="configId" required {
                    option value="" { "Choose…" }
                    @for c in &configs {
                        option value=(c.config_id) selected[chosen.as_ref() == Some(&c.config_id)] { (c.config_id) }
                    }
                }
            }
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="none"; }
            label { "Assignment key " input type="text" name="assignmentKey" value=[given(&form.assignment_key)] placeholder="e.g. a user id"; }
            label { "Instance " input type="text" name="instanceId" value=[given(&form.instance_id)] placeholder="optional"; }
            button type="submit" { "Preview" }
        }
        @match &result {
            None => (empty("Choose a config to see the document a caller would get.")),
            Some((effective, version)) => {
                @let doc = &version.document;
                @let env = environment.as_ref().map(|e| e.as_str());
                @let latest = configs.iter().find(|c| &c.config_id == effective.config_id()).map(|c| c.version);
                @if let Some(latest) = latest.filter(|l| *l != effective.version()) {
                    p.notice role="status" { "This environment is served version " (effective.version())
                        ", not the latest (" (latest) "): it releases versions through deployments." }
                }
                section aria-labelledby="applied" {
                    h2 #applied { "Layers applied, in order" }
                    ol.layers {
                        li { "Base config of version " (effective.version()) }
                        @if let Some(env) = env.filter(|e| doc.overrides.contains_key(*e)) {
                            li { "Override for " strong { (env) } }
                        }
                        @if effective.view.assignment.canary {
                            li { "Canary patch (this assignment is inside its traffic)" }
                        }
                        @if let Some(variant) = &effective.view.assignment.variant {
                            li { "A/B variant " strong { (variant) } }
                        }
                    }
                    @if !effective.view.assignment.canary && doc.canary.is_some() {
                        p.hint { "The canary did not apply: another environment, not active now, or this assignment is outside its traffic." }
                    }
                }
                section aria-labelledby="document" {
                    h2 #document { "Effective config" }
                    p { "Checksum " code { (effective.view.checksum) } }
                    (json(&effective.view.value()))
                }
            }
        }
    };
    Ok(viewer.page("Effective preview", body))
}

//! Flags (targeting in words, an evaluation tester), secrets (metadata only: never a value)
//! and the registry (services, instances, health).

use axum::extract::{Path, Query, State};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::configs::{environment, given, json};
use super::operations::ago;
use super::page::{PageResult, Viewer, column_heads, empty, time};
use crate::api::http::AppState;
use crate::core::error::Error;
use crate::core::flags::model::{Condition, EnvironmentTargeting, Rollout, Rule};
use crate::core::flags::service::EvaluationScope;
use crate::core::flags::{EvaluationContext, FlagDefinition};
use crate::core::ids::{FlagKey, SecretName, ServiceName};

pub async fn flags(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let flags = state.flags.flags(&viewer.caller, None).await?;
    let body = html! {
        @if flags.is_empty() {
            (empty("No feature flags yet."))
        } @else {
            table {
                (column_heads(&["Flag", "Type", "Version", "Targeting", "Updated"]))
                tbody {
                    @for flag in &flags {
                        tr {
                            th scope="row" { a href={ "/ui/flags/" (flag.id) } { (flag.id) } }
                            td { (name_of(&flag.document.flag_type)) }
                            td { (flag.version) }
                            td { (headline(&flag.document)) }
                            td { (time(flag.created_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("Feature flags", body))
}

fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn headline(flag: &FlagDefinition) -> String {
    if !flag.enabled {
        return format!("Off: everyone gets {}", flag.default_variant);
    }
    match (&flag.rules[..], &flag.rollout) {
        ([], None) => format!("Everyone gets {}", flag.default_variant),
        (rules, rollout) => {
            let mut parts = Vec::new();
            if !rules.is_empty() {
                parts.push(format!("{} rules", rules.len()));
            }
            if let Some(r) = rollout {
                parts.push(format!("{}% get {}", r.percentage, r.variant));
            }
            format!("{}; else {}", parts.join(", "), flag.default_variant)
        }
    }
}

fn condition_words(c: &Condition) -> String {
    let op = name_of(&c.operator).replace('_', " ");
    format!("{} {} {}", c.attribute, op, c.value)
}

fn rule_words(rule: &Rule) -> Markup {
    let mut when: Vec<String> = rule.conditions.iter().map(condition_words).collect();
    if !rule.target_keys.is_empty() {
        when.push(format!(
            "the targeting key is one of {}",
            rule.target_keys.join(", ")
        ));
    }
    for p in &rule.prerequisites {
        when.push(format!(
            "flag {} serves {}",
            p.flag_key,
            p.variants.join(" or ")
        ));
    }
    let serves = match (&rule.variant, rule.split.is_empty()) {
        (Some(variant), _) => format!("serve {variant}"),
        (None, false) => {
            let total: u64 = rule.split.iter().map(|s| s.weight).sum();
            let shares: Vec<String> = rule
                .split
                .iter()
                .map(|s| {
                    format!(
                        "{} {:.0}%",
                        s.variant,
                        s.weight as f64 * 100.0 / total.max(1) as f64
                    )
                })
                .collect();
            format!("split {}", shares.join(", "))
        }
        (None, true) => "serve the default".to_owned(),
    };
    let share = rule
        .percentage
        .map(|p| format!(" for {p}% of them (the rest go on)"))
        .unwrap_or_default();
    html! {
        li { "Rule " code { (rule.id) } ": when "
            @if when.is_empty() { "always" } @else { (when.join(" and ")) }
            ", " (serves) (share) "." }
    }
}

fn targeting_words(
    enabled: bool,
    default: &str,
    rollout: Option<&Rollout>,
    rules: &[Rule],
) -> Markup {
    html! {
        @if !enabled {
            p { "Disabled: everyone gets " strong { (default) } "." }
        } @else {
            ol.rules {
                @for rule in rules { (rule_words(rule)) }
                @if let Some(r) = rollout {
                    li { "Otherwise " (r.percentage) "% of targeting keys get " strong { (r.variant) } "." }
                }
                li { "Everyone else gets " strong { (default) } "." }
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TesterForm {
    environment: Option<String>,
    targeting_key: Option<String>,
    attributes: Option<String>,
}

pub async fn flag(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    Query(form): Query<TesterForm>,
) -> PageResult {
    let key = FlagKey::parse(&raw)?;
    let flag = state.flags.flag(&viewer.caller, &key).await?;
    let def = &flag.document;
    let environment = environment(&form.environment)?;
    let tried = form.environment.is_some() || form.targeting_key.is_some();
    let evaluation = if tried {
        let mut context = match given(&form.attributes) {
            Some(text) => serde_json::from_str::<Value>(text).map_err(|e| {
                Error::invalid(
                    "attributes",
                    format!("the attributes are not a JSON object: {e}"),
                )
            })?,
            None => Value::Object(Default::default()),
        };
        if let (Some(key), Value::Object(map)) = (given(&form.targeting_key), &mut context) {
            map.insert("targetingKey".into(), Value::String(key.to_owned()));
        }
        let context = EvaluationContext::from_json(context, "attributes")?;
        let scope = EvaluationScope {
            environment: environment.clone(),
            service: None,
        };
        Some(
            state
                .flags
                .evaluate(&viewer.caller, key.as_str(), &scope, &context)
                .await?,
        )
    } else {
        None
    };
    let body = html! {
        @if let Some(d) = &def.description { p { (d) } }
        dl.facts {
            dt { "Type" } dd { (name_of(&def.flag_type)) }
            dt { "Version" } dd { (flag.version) ", " (time(flag.created_at)) " by " (flag.metadata.actor) }
            dt { "Variants" } dd { @for (n, (name, value)) in def.variants.iter().enumerate() { @if n > 0 { ", " } code { (name) " = " (value) } } }
            @if !def.services.is_empty() { dt { "Services" } dd { (def.services.join(", ")) } }
        }
        section aria-labelledby="targeting" {
            h2 #targeting { "Targeting" }
            h3 { "Environments without their own targeting" }
            (targeting_words(def.enabled, &def.default_variant, def.rollout.as_ref(), &def.rules))
            @for (env, t) in &def.environments {
                h3 { "In " (env) }
                (environment_words(def, t))
            }
        }
        section aria-labelledby="tester" {
            h2 #tester { "Try it" }
            form.filters method="get" action={ "/ui/flags/" (key) } {
                label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="none"; }
                label { "Targeting key " input type="text" name="targetingKey" value=[given(&form.targeting_key)]; }
                label { "Attributes (JSON) " input type="text" name="attributes" value=[given(&form.attributes)] placeholder=r#"{"country": "de"}"#; }
                button type="submit" { "Evaluate" }
            }
            @if let Some(evaluation) = &evaluation {
                @match &evaluation.outcome {
                    Ok(r) => p.notice role="status" { "Serves " strong { (r.variant) } " = " code { (r.value) } " (" (r.reason.as_str()) ")." },
                    Err(f) => p.notice role="status" { "No variant: " (f.message) " (" (f.code.as_str()) ")." },
                }
            }
        }
        details { summary { "The definition as JSON" } (json(&serde_json::to_value(def).unwrap_or_default())) }
    };
    Ok(viewer.page(&format!("Flag {key}"), body))
}

fn environment_words(def: &FlagDefinition, t: &EnvironmentTargeting) -> Markup {
    let default = t.default_variant.as_deref().unwrap_or(&def.default_variant);
    targeting_words(t.enabled, default, t.rollout.as_ref(), &t.rules)
}

pub async fn secrets(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let secrets = state.secrets.list(&viewer.caller).await?;
    let body = html! {
        p.hint { "Only metadata is shown here: the console never displays a secret's value." }
        @if secrets.is_empty() {
            (empty("No secrets in the built-in store."))
        } @else {
            table {
                (column_heads(&["Secret", "Current version", "Format", "Created"]))
                tbody {
                    @for s in &secrets {
                        tr {
                            th scope="row" { a href={ "/ui/secrets/" (s.name) } { (s.name) } }
                            td { (s.version) }
                            td { (name_of(&s.format)) }
                            td { (time(s.created_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(viewer.page("Secrets", body))
}

pub async fn secret(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let name = SecretName::parse(&raw)?;
    let info = state.secrets.describe(&viewer.caller, &name).await?;
    let body = html! {
        dl.facts {
            dt { "Rotation" } dd {
                @match &info.rotation {
                    Some(p) => { "every " (p.interval_secs / 3600) " h, previous kept " (p.grace_period_secs / 60) " min" }
                    None => "manual only",
                }
            }
            dt { "Next rotation" } dd { @match info.next_rotation_at { Some(at) => (time(at)), None => "none scheduled" } }
            @if let Some(at) = info.previous_expires_at { dt { "Previous expires" } dd { (time(at)) } }
        }
        table {
            caption { "Versions (values are never shown)" }
            (column_heads(&["Version", "Stages", "Created", "By", "Message"]))
            tbody {
                @for v in &info.versions {
                    tr {
                        th scope="row" { (v.version) }
                        td { (v.stages.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (time(v.created_at)) }
                        td { (v.actor) }
                        td { (v.message.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    Ok(viewer.page(&format!("Secret {name}"), body))
}

pub async fn registry(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let services = state.registry.services(&viewer.caller)?;
    let now = Utc::now();
    let mut sections = Vec::new();
    for summary in &services {
        let name = ServiceName::parse(&summary.service_name)?;
        let instances = state.registry.service(&viewer.caller, &name).await?;
        sections.push(html! {
            section {
                h2 { (summary.service_name) }
                p { (summary.instances) " instances: " (summary.passing) " passing, " (summary.warning) " warning, " (summary.critical) " critical, " (summary.maintenance) " in maintenance, " (summary.expired) " expired." }
                table {
                    (column_heads(&["Instance", "Environment", "Health", "Address", "Last heartbeat"]))
                    tbody {
                        @for i in &instances {
                            tr {
                                th scope="row" { (i.instance_id) }
                                td { (i.environment.as_ref().map_or("any", |e| e.as_str())) }
                                td { span class={ "state " (i.status.as_str()) } { (i.status.as_str()) }
                                    @if i.maintenance.is_some() { " (maintenance)" }
                                    @if i.expired { " (expired)" } }
                                td { code { (i.service_url) } }
                                td { (time(i.last_heartbeat)) " (" (ago(now - i.last_heartbeat)) ")" }
                            }
                        }
                    }
                }
            }
        });
    }
    let body = html! {
        div #services aria-live="polite" data-watch="/ui/events?registry=true" {
            @if sections.is_empty() { (empty("No service has registered an instance.")) }
            @for s in sections { (s) }
        }
    };
    Ok(viewer.page("Registry", body))
}

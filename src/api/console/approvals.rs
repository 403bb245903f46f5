//! The approvals queue: change requests to protected environments, with approve, reject (with
//! a reason), cancel and apply, each the core call `POST /api/v1/change-requests/{id}/…` makes.

use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::configs::{environment, given, json};
use super::history::side_by_side;
use super::page::{PageResult, Viewer, empty, time};
use crate::api::http::AppState;
use crate::core::access::Permission;
use crate::core::approvals::model::{
    ChangeOperation, ChangeRequest, ChangeRequestStatus, Proposal, Subject,
};
use crate::core::approvals::{self};
use crate::core::error::Error;
use crate::core::ports::ChangeRequestQuery;
use crate::core::validation::check_metadata;

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    status: Option<String>,
    environment: Option<String>,
}

const STATUSES: [&str; 6] = [
    "pending",
    "approved",
    "applied",
    "rejected",
    "cancelled",
    "all",
];

pub async fn queue(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<QueueQuery>,
) -> PageResult {
    let chosen = given(&query.status).unwrap_or("pending");
    let status = ChangeRequestStatus::filter(chosen)?;
    let environment = environment(&query.environment)?;
    let requests = state
        .service
        .change_requests(
            &viewer.caller,
            ChangeRequestQuery {
                status,
                environment: environment.as_ref().map(|e| e.to_string()),
                subject: None,
                limit: 100,
                prefixes: Vec::new(),
            },
        )
        .await?;
    let mut cards = Vec::new();
    for request in &requests {
        cards.push(card(&state, &viewer, request).await);
    }
    let body = html! {
        form.filters method="get" action="/ui/approvals" {
            label { "Status "
                select name="status" { @for s in STATUSES { option value=(s) selected[s == chosen] { (s) } } }
            }
            label { "Environment " input type="text" name="environment" value=[environment.as_ref().map(|e| e.as_str())] placeholder="any"; }
            button type="submit" { "Show" }
        }
        div #queue data-watch="/ui/events" {
            @if requests.is_empty() {
                (empty("No change requests here. Changes to protected environments wait in this queue for approval."))
            }
            @for card in cards { (card) }
        }
    };
    Ok(viewer.page("Approvals", body))
}

async fn card(state: &AppState, viewer: &Viewer, request: &ChangeRequest) -> Markup {
    let subject = request.subject.as_str();
    let page = match &request.subject {
        Subject::Config(_) => "/ui/configs/",
        Subject::Flag(_) => "/ui/flags/",
    };
    let pending = request.status == ChangeRequestStatus::Pending;
    let approved = request.status == ChangeRequestStatus::Approved;
    let is_requester = request.requested_by == viewer.caller.identity().name;
    let may_approve = viewer.may(Permission::Approve) && viewer.may_write(subject);
    let proposal = match (&request.subject, &request.operation) {
        (Subject::Config(id), ChangeOperation::Put { document }) => match document.as_ref() {
            Proposal::Config(doc) => {
                let before = match request.base_version {
                    0 => serde_json::Value::Null,
                    base => state
                        .service
                        .version(&viewer.caller, id, base)
                        .await
                        .ok()
                        .and_then(|v| serde_json::to_value(&v.document).ok())
                        .unwrap_or_default(),
                };
                Some(side_by_side(
                    &before,
                    &serde_json::to_value(doc).unwrap_or_default(),
                ))
            }
            Proposal::Flag(flag) => Some(json(&serde_json::to_value(flag).unwrap_or_default())),
        },
        (_, ChangeOperation::Put { document }) => {
            Some(json(&serde_json::to_value(document).unwrap_or_default()))
        }
        _ => None,
    };
    let action = |name: &str, label: &str, extra: Markup| {
        html! {
            form.inline method="post" action={ "/ui/approvals/" (request.id) "/" (name) } {
                (viewer.form_fields())
                (extra)
                button type="submit" class=(if name == "approve" || name == "apply" { "primary" } else { "danger" }) { (label) }
            }
        }
    };
    html! {
        article.card id={ "cr-" (request.id) } {
            h2 { (request.subject.kind_name()) " " a href={ (page) (subject) } { (subject) } ": " (describe(&request.operation)) }
            dl.facts {
                dt { "Status" } dd { span class={ "state " (request.status.as_str()) } { (request.status.as_str()) } }
                dt { "Environments" } dd { (request.environments.join(", ")) }
                dt { "Requested" } dd { (time(request.created_at)) " by " strong { (request.requested_by) } }
                dt { "Message" } dd { (request.message.as_deref().unwrap_or("No message.")) }
                dt { "Approvals" } dd {
                    (request.approvals.len()) " of " (request.required_approvals)
                    @for a in &request.approvals { " · " (a.actor) " (" (time(a.at)) ")" }
                }
                @if let Some(reason) = &request.reason { dt { "Reason" } dd { (reason) } }
                @if let Some(v) = request.applied_version { dt { "Applied as" } dd { "version " (v) } }
            }
            @if let Some(proposal) = proposal {
                details { summary { "What it changes (base version " (request.base_version) " on the left)" } (proposal) }
            }
            div.actions {
                @if pending && may_approve && !is_requester {
                    (action("approve", "Approve", html! {}))
                    (action("reject", "Reject", html! {
                        label { "Reason " input type="text" name="reason" required; }
                    }))
                }
                @if approved && viewer.may_write(subject) {
                    (action("apply", "Apply now", html! {}))
                }
                @if (pending || approved) && (is_requester || viewer.may(Permission::ManageTokens)) {
                    (action("cancel", "Cancel request", html! {
                        label { "Reason " input type="text" name="reason"; }
                    }))
                }
            }
        }
    }
}

fn describe(operation: &ChangeOperation) -> String {
    match operation {
        ChangeOperation::Put { .. } => "a new version".to_owned(),
        ChangeOperation::Rollback { target_version } => {
            format!("roll back to version {target_version}")
        }
        ChangeOperation::Delete => "delete".to_owned(),
        ChangeOperation::Deploy(deploy) => {
            format!(
                "deploy version {} to {}",
                deploy.version, deploy.environment
            )
        }
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    actor: Option<String>,
    reason: Option<String>,
}

pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> PageResult {
    if viewer.caller.identity().unrestricted && given(&form.actor).is_none() {
        return Err(Error::invalid(
            "actor",
            "without access control, name yourself as the actor",
        )
        .into());
    }
    let actor = viewer.metadata(form.actor, None);
    check_metadata(&actor)?;
    let reason = form.reason.unwrap_or_default();
    let caller = &viewer.caller;
    let request = match action.as_str() {
        "approve" => state.service.approve(caller, &id, &actor).await?,
        "reject" => state.service.reject(caller, &id, &reason, &actor).await?,
        "cancel" => state.service.cancel(caller, &id, &reason, &actor).await?,
        "apply" => {
            approvals::apply(
                &state.service,
                &state.flags,
                &state.deployments,
                caller,
                &id,
                &actor,
            )
            .await?
        }
        other => {
            return Err(Error::not_found("change request action", other).into());
        }
    };
    let body = html! {
        p.notice role="status" { "Change request " (request.id) " is now " strong { (request.status.as_str()) } "." }
        p { a href="/ui/approvals" { "Back to the approvals queue" } }
    };
    Ok(viewer.page("Done", body))
}

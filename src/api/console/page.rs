//! What every console page shares: the layout, the viewer (the signed-in caller and the
//! session's CSRF token), times, and errors shown as sentences with the right status.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::CsrfToken;
use crate::api::http::error::{Refusal, status_of};
use crate::core::access::{Caller, Permission};
use crate::core::error::{Error, ErrorCode};
use crate::core::model::Metadata;

pub type PageResult<T = Response> = Result<T, PageError>;

/// The signed-in caller, as the access layer authenticated it, and the session's CSRF token.
pub struct Viewer {
    pub caller: Caller,
    csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state)
            .await
            .map_err(|error| PageError(error.0))?;
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|token| token.0.clone())
            .ok_or_else(|| PageError(Error::internal("a console page ran without a session")))?;
        Ok(Viewer { caller, csrf })
    }
}

impl Viewer {
    /// Whether the identity holds the permission (what the page offers; the core decides).
    pub fn may(&self, permission: Permission) -> bool {
        self.caller.require(permission).is_ok()
    }

    /// Whether the identity may change this config or flag.
    pub fn may_write(&self, id: &str) -> bool {
        self.caller.require_on(Permission::Write, id).is_ok()
    }

    fn unrestricted(&self) -> bool {
        self.caller.identity().unrestricted
    }

    /// The hidden CSRF field every form carries, and, without access control, the name the
    /// change is recorded under.
    pub fn form_fields(&self) -> Markup {
        html! {
            input type="hidden" name="csrf" value=(self.csrf);
            @if self.unrestricted() {
                p {
                    label { "Your name (recorded as the actor) "
                        input type="text" name="actor" required autocomplete="name"; }
                }
            }
        }
    }

    /// The metadata a change from a form is recorded with: the signed-in identity (the form's
    /// name only without access control) and the message.
    pub fn metadata(&self, actor: Option<String>, message: Option<String>) -> Metadata {
        let actor = actor
            .filter(|a| self.unrestricted() && !a.trim().is_empty())
            .unwrap_or_else(|| self.caller.actor_or("console"));
        self.caller.stamp(Metadata {
            actor,
            message: message.filter(|m| !m.trim().is_empty()),
            ..Default::default()
        })
    }

    pub fn page(&self, title: &str, body: Markup) -> Response {
        Html(layout(Some(self), title, body).into_string()).into_response()
    }
}

const NAV: [(&str, &str); 9] = [
    ("/ui/configs", "Configs"),
    ("/ui/approvals", "Approvals"),
    ("/ui/deployments", "Deployments"),
    ("/ui/drift", "Drift"),
    ("/ui/audit", "Audit"),
    ("/ui/flags", "Flags"),
    ("/ui/secrets", "Secrets"),
    ("/ui/registry", "Registry"),
    ("/ui/effective", "Effective"),
];

pub fn layout(viewer: Option<&Viewer>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · summit-config" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    a.brand href="/ui/" { "summit-config" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in NAV {
                                li { a href=(href) { (label) } }
                            }
                        }
                    }
                    @if let Some(viewer) = viewer {
                        div.who {
                            span { "Signed in as " strong { (viewer.caller.identity().name) } }
                            @if !viewer.unrestricted() {
                                form method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A time in UTC for readers without JavaScript; the script shows it in the viewer's zone
/// and keeps UTC in the hover title.
pub fn time(at: DateTime<Utc>) -> Markup {
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(at.to_rfc3339()) title=(utc) { (utc) } }
}

/// A page that is only a sentence (refusals, errors, confirmations).
pub fn message(status: StatusCode, title: &str, sentence: &str) -> Response {
    let body = html! { p.notice role="alert" { (sentence) } p { a href="/ui/" { "Back to the console" } } };
    (status, Html(layout(None, title, body).into_string())).into_response()
}

/// A page past the request deadline (`SUMMIT_REQUEST_TIMEOUT_SECS`).
pub fn too_late(deadline: std::time::Duration) -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Took too long",
        &format!(
            "The server did not answer within {} s. A change may still have been made: look \
             before trying again.",
            deadline.as_secs_f64()
        ),
    )
}

pub fn login(csrf: &str, next: &str, note: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        @if let Some(note) = note { p.notice role="alert" { (note) } }
        form.card method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            p {
                label for="token" { "API token or JWT" }
                input #token type="password" name="token" required autocomplete="current-password";
            }
            p.hint { "The token is kept only inside an encrypted, HttpOnly session cookie, for eight hours at most." }
            button type="submit" { "Sign in" }
        }
    };
    (status, Html(layout(None, "Sign in", body).into_string())).into_response()
}

/// A core error as a console page: a sentence and the status REST would answer. A refusal
/// not yet recorded is handed to the access layer, which records it as for REST.
#[derive(Debug)]
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(error: Error) -> Self {
        PageError(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = status_of(code);
        let title = match code {
            ErrorCode::NotFound => "Not found",
            ErrorCode::Forbidden => "Not allowed",
            ErrorCode::Unauthenticated => "Sign in first",
            ErrorCode::VersionConflict
            | ErrorCode::ConcurrentModification
            | ErrorCode::Conflict => "Changed meanwhile",
            ErrorCode::Internal | ErrorCode::Unavailable => "Something went wrong",
            _ => "That did not work",
        };
        let sentence = match &self.0 {
            Error::Internal { detail } => {
                tracing::error!(%detail, "internal error");
                "Something went wrong on the server; it has been logged.".to_owned()
            }
            other => sentence(&other.to_string()),
        };
        let mut response = message(status, title, &sentence);
        if let Error::Forbidden {
            reason,
            recorded: false,
            resource,
        } = self.0
        {
            response
                .extensions_mut()
                .insert(Refusal { reason, resource });
        }
        response
    }
}

/// A core message as a sentence: capitalised and ending with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A table's empty state.
pub fn empty(sentence: &str) -> Markup {
    html! { p.empty { (sentence) } }
}

/// A table's head: one column heading each.
pub fn column_heads(headings: &[&str]) -> Markup {
    html! { thead { tr { @for heading in headings { th scope="col" { (heading) } } } } }
}

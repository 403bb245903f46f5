//! Console sessions. Signing in exchanges an API token (or a JWT) for a cookie holding the
//! credential sealed with the secret store's key (AES-256-GCM, so no replica without the key
//! can read or forge it), an expiry and the session's CSRF token. Every request opens the
//! cookie and authenticates the credential again, so a revoked or expired token ends the
//! session at once, on whichever replica answers. See docs/console.md#sessions.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::page;
use crate::api::http::AppState;
use crate::core::secrets::crypto::{Keyring, Sealed};

pub const COOKIE: &str = "summit_console";
/// The associated data the cookie is sealed under, so no other sealed value opens as one.
const SEALED_AS: &str = "console-session";
/// How long a sign-in lasts (the credential's own expiry or revocation ends it sooner).
pub const SESSION_SECS: i64 = 8 * 60 * 60;
/// What browsers keep of one cookie (name and attributes included, 4096 bytes), with room for
/// the attributes.
const MAX_COOKIE: usize = 3900;
/// Forms are small; anything larger is refused before it is read further.
const FORM_LIMIT: usize = 64 * 1024;

/// What the cookie holds once opened.
#[derive(Serialize, Deserialize)]
struct Session {
    /// The API token or JWT; absent while signed out or without access control.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
    #[serde(rename = "x")]
    csrf: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    expires: i64,
}

impl Session {
    fn new(credential: Option<String>) -> Session {
        Session {
            credential,
            csrf: hex::encode(rand::random::<[u8; 16]>()),
            expires: Utc::now().timestamp() + SESSION_SECS,
        }
    }
}

/// The request's CSRF token, which every form of the page carries back.
#[derive(Clone)]
pub struct CsrfToken(pub String);

/// How the console seals its cookies.
pub struct Sessions {
    keyring: Arc<Keyring>,
    /// The server speaks TLS: cookies are `Secure`.
    secure: bool,
}

impl Sessions {
    pub fn new(keyring: Arc<Keyring>, secure: bool) -> Sessions {
        Sessions { keyring, secure }
    }

    fn seal(&self, session: &Session) -> Option<String> {
        let plain = serde_json::to_vec(session).ok()?;
        let sealed = self.keyring.seal(SEALED_AS, 1, &plain).ok()?;
        Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).ok()?))
    }

    /// The session a cookie holds, unless it was not sealed by this key or has expired.
    fn open(&self, headers: &HeaderMap) -> Option<Session> {
        let text = cookie(headers, COOKIE)?;
        let sealed: Sealed = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let plain = self.keyring.open(SEALED_AS, 1, &sealed).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        (session.expires > Utc::now().timestamp()).then_some(session)
    }

    fn set_cookie(&self, session: &Session, response: &mut Response) {
        let Some(value) = self.seal(session) else {
            return;
        };
        self.write_cookie(&value, SESSION_SECS, response);
    }

    fn clear_cookie(&self, response: &mut Response) {
        self.write_cookie("", 0, response);
    }

    fn write_cookie(&self, value: &str, max_age: i64, response: &mut Response) {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// In front of every console page but sign-in: opens the session (or, without access control,
/// starts an anonymous one), refuses a form without the session's CSRF token, and hands the
/// credential to the REST access layer as a bearer header, which authenticates it and records
/// refusals as for any REST call.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let sessions = &state.console;
    // Only the cookie speaks for a console request.
    request.headers_mut().remove(header::AUTHORIZATION);
    let (session, fresh) = match sessions.open(request.headers()) {
        // The sign-in page's session has no credential yet: with access control it signs in nothing.
        Some(session) if session.credential.is_some() || !state.access.enabled() => {
            (session, false)
        }
        _ if !state.access.enabled() => (Session::new(None), true),
        _ => return sign_in_first(&request),
    };
    if request.method() == Method::POST {
        request = match with_checked_form(request, &session.csrf).await {
            Ok(request) => request,
            Err(refused) => return refused,
        };
    }
    if let Some(value) = session
        .credential
        .as_ref()
        .and_then(|credential| HeaderValue::from_str(&format!("Bearer {credential}")).ok())
    {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request
        .extensions_mut()
        .insert(CsrfToken(session.csrf.clone()));
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        // The credential was revoked or expired since sign-in.
        let mut response = Redirect::to("/ui/login?expired=1").into_response();
        sessions.clear_cookie(&mut response);
        return response;
    }
    if fresh {
        sessions.set_cookie(&session, &mut response);
    }
    response
}

fn sign_in_first(request: &Request) -> Response {
    if request.method() == Method::GET {
        let next = request
            .uri()
            .path_and_query()
            .map_or("/ui/", |p| p.as_str());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        return Redirect::to(&format!("/ui/login?{query}")).into_response();
    }
    page::message(
        StatusCode::UNAUTHORIZED,
        "Sign in first",
        "You are not signed in (or your session has expired), so nothing was changed.",
    )
}

/// The request with its form read, when the form carries the session's CSRF token.
async fn with_checked_form(request: Request, expected: &str) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        page::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            "The form sent more than the console accepts, so nothing was changed.",
        )
    })?;
    if !csrf_matches(&bytes, expected) {
        return Err(forged());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn csrf_matches(form: &[u8], expected: &str) -> bool {
    form_urlencoded::parse(form)
        .find(|(key, _)| key == "csrf")
        .is_some_and(|(_, given)| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

fn forged() -> Response {
    page::message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form did not come from a console page of your session (its anti-forgery token \
         is missing or wrong), so nothing was changed. Reload the page and try again.",
    )
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

/// The sign-in form (without access control there is nothing to sign in to).
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if !state.access.enabled() {
        return Redirect::to("/ui/").into_response();
    }
    let (session, fresh) = match state.console.open(&headers) {
        Some(session) => (session, false),
        None => (Session::new(None), true),
    };
    let note = query
        .expired
        .is_some()
        .then_some("Your sign-in is no longer valid: sign in again.");
    let next = safe_next(query.next.as_deref());
    let mut response = page::login(&session.csrf, next, note, StatusCode::OK);
    if fresh {
        state.console.set_cookie(&session, &mut response);
    }
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Exchanges the credential for a session cookie, once the access service accepts it.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !state.access.enabled() {
        return Redirect::to("/ui/").into_response();
    }
    let next = safe_next(form.next.as_deref());
    let Some(pending) = state.console.open(&headers) else {
        return forged();
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(pending.csrf.as_bytes())) {
        return forged();
    }
    let credential = form.token.trim();
    if let Err(error) = state.access.authenticate(Some(credential)) {
        metrics::counter!("summit_auth_failures_total").increment(1);
        tracing::info!(%error, "console sign-in refused");
        return page::login(
            &pending.csrf,
            next,
            Some("That token was not accepted: it is unknown, revoked or expired."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let session = Session::new(Some(credential.to_owned()));
    let Some(sealed) = state
        .console
        .seal(&session)
        .filter(|s| s.len() <= MAX_COOKIE)
    else {
        return page::login(
            &pending.csrf,
            next,
            Some(
                "That credential is too long to keep in a browser cookie (a JWT of more than \
                 about 2 KB): sign in with an API token.",
            ),
            StatusCode::BAD_REQUEST,
        );
    };
    let mut response = Redirect::to(next).into_response();
    state
        .console
        .write_cookie(&sealed, SESSION_SECS, &mut response);
    response
}

pub async fn sign_out(State(state): State<AppState>) -> Response {
    let target = if state.access.enabled() {
        "/ui/login"
    } else {
        "/ui/"
    };
    let mut response = Redirect::to(target).into_response();
    state.console.clear_cookie(&mut response);
    response
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/ui/") && !n.starts_with("/ui//") && !n.contains('\\'))
        .unwrap_or("/ui/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_read_from_the_form() {
        assert!(csrf_matches(b"a=1&csrf=abc", "abc"));
        assert!(!csrf_matches(b"a=1&csrf=abd", "abc"));
        assert!(!csrf_matches(b"a=1", "abc"));
    }

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/ui/configs?prefix=a")),
            "/ui/configs?prefix=a"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
    }
}

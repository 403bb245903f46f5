//! The web console at `/ui/`: server-rendered pages over the same core calls the REST handlers
//! make, with the signed-in caller, behind the same access layer (docs/console.md). Pages work
//! without JavaScript; `assets/console.js` only localises times and refreshes live parts.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::http::access::AuthenticateLayer;
use crate::api::http::deadline::DeadlineLayer;
use crate::api::http::{AppState, HttpLimits};

mod approvals;
mod catalog;
mod configs;
mod deployments;
mod history;
mod operations;
pub mod page;
pub mod session;

pub use session::Sessions;

pub fn router(state: AppState, limits: &HttpLimits) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/ui/", get(configs::home))
        .route("/ui/configs", get(configs::list))
        .route("/ui/configs/{id}", get(configs::show))
        .route("/ui/configs/{id}/history", get(history::timeline))
        .route("/ui/configs/{id}/diff", get(history::diff))
        .route(
            "/ui/configs/{id}/rollback",
            get(history::confirm_rollback).post(history::rollback),
        )
        .route("/ui/configs/{id}/drift", get(operations::config_drift))
        .route("/ui/effective", get(configs::effective))
        .route("/ui/drift", get(operations::drift))
        .route("/ui/audit", get(operations::audit))
        .route("/ui/approvals", get(approvals::queue))
        .route("/ui/approvals/{id}/{action}", post(approvals::decide))
        .route("/ui/deployments", get(deployments::list))
        .route("/ui/deployments/{id}", get(deployments::show))
        .route("/ui/deployments/{id}/progress", get(deployments::progress))
        .route("/ui/deployments/{id}/{action}", post(deployments::act))
        .route("/ui/flags", get(catalog::flags))
        .route("/ui/flags/{key}", get(catalog::flag))
        .route("/ui/secrets", get(catalog::secrets))
        .route("/ui/secrets/{name}", get(catalog::secret))
        .route("/ui/registry", get(catalog::registry))
        .route(
            "/ui/events",
            get(crate::api::http::watch::watch).layer(middleware::from_fn(server_sent_events_only)),
        )
        .route("/ui/logout", post(session::sign_out))
        // Inner first: the access layer authenticates the bearer header the session layer set.
        .route_layer(AuthenticateLayer {
            state: state.clone(),
        })
        .route_layer(middleware::from_fn_with_state(
            state,
            session::require_session,
        ))
        // The REST routes' bounds: a deadline on the store, a limit on what a form may send.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(DeadlineLayer::answering(
            limits.request_timeout,
            page::too_late,
        ));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(session::login_form).post(session::sign_in))
        .route("/ui/assets/{file}", get(asset))
        .merge(signed_in)
        .layer(middleware::map_response(with_page_policy))
}

/// The console reads its change stream as Server-Sent Events; a WebSocket upgrade is refused
/// there. CORS does not cover WebSockets: a page of another origin on the same site (where the
/// `SameSite` session cookie is still sent) could open one and read every change event.
async fn server_sent_events_only(
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if request.headers().contains_key(header::UPGRADE) {
        return (
            StatusCode::BAD_REQUEST,
            "the console's event stream is Server-Sent Events only",
        )
            .into_response();
    }
    next.run(request).await
}

/// What every console answer tells the browser: run only the console's own script and style,
/// never inside another site's frame (a framed page could be clicked into a rollback or an
/// approval), post forms only to the console, and sniff no content types.
async fn with_page_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The stylesheet and the script, compiled into the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

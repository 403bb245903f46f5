//! REST transport: parses requests, calls the core, converts the result. No business rules.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::core::access::AccessService;
use crate::core::deployments::{DeploymentService, StrategyService};
use crate::core::flags::FlagService;
use crate::core::notifications::NotificationService;
use crate::core::registry::RegistryService;
use crate::core::secrets::SecretService;
use crate::core::service::ConfigService;

pub mod access;
pub mod audit;
pub mod change_requests;
pub mod configs;
pub(crate) mod deadline;
mod deployments;
mod direct;
pub mod drift;
pub mod effective;
pub mod error;
pub mod extract;
pub mod flags;
pub mod ofrep;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod registry;
pub mod schema;
mod secrets;
mod strategies;
pub mod tokens;
pub mod track;
pub mod watch;
pub mod webhooks;

/// What every handler shares; cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

pub struct AppContext {
    pub service: Arc<ConfigService>,
    pub flags: Arc<FlagService>,
    pub secrets: Arc<SecretService>,
    pub registry: Arc<RegistryService>,
    pub strategies: Arc<StrategyService>,
    pub deployments: Arc<DeploymentService>,
    pub notifications: Arc<NotificationService>,
    pub access: Arc<AccessService>,
    /// How the web console seals its session cookies.
    pub console: crate::api::console::Sessions,
    pub shutdown: CancellationToken,
    pub metrics: PrometheusHandle,
    /// Reads the gauges of the store's state at each scrape.
    pub collector: Arc<crate::telemetry::collector::Collector>,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(context: AppContext) -> Self {
        AppState(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppContext;
    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// A 200 answer of `value` as JSON, as `axum::Json` gives it, written into one buffer sized for
/// the small answers of the hot paths (axum's starts at 128 bytes and grows).
pub(crate) fn json_answer<T: serde::Serialize>(value: &T) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut body = Vec::with_capacity(256);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => {
            let mut response = axum::response::Response::new(axum::body::Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => error::ApiError(crate::core::error::Error::internal(error)).into_response(),
    }
}

/// Marks a response answered from the read cache while the database is unreachable.
pub fn mark_if_stale(state: &AppState, response: &mut axum::response::Response) {
    if state.service.serving_stale() {
        response
            .headers_mut()
            .insert(STALE_HEADER, axum::http::HeaderValue::from_static("true"));
    }
}

pub const STALE_HEADER: &str = "summit-stale";

#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// Every route, each registered with its documentation (`utoipa_axum::routes!`), so the router
/// and the OpenAPI document (`openapi::document`) come from the same registrations. `router`
/// adds only the access layer, fallbacks and outer layers.
pub(crate) fn documented_routes(
    limits: &HttpLimits,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Routes that read bodies or may wait on the store get the body limit and a deadline; the
    // effective read takes no body, is answered from memory, and skips both.
    let bounded = OpenApiRouter::new()
        .merge(configs::router())
        .merge(schema::router())
        .merge(audit::router())
        .merge(drift::router())
        .merge(secrets::router())
        .merge(registry::router())
        .merge(strategies::router())
        .merge(deployments::router())
        .merge(watch::router())
        .merge(flags::router())
        .merge(ofrep::router())
        .merge(tokens::router())
        .merge(webhooks::router())
        .merge(change_requests::router())
        .merge(ops::router())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(deadline::DeadlineLayer::new(limits.request_timeout));
    OpenApiRouter::with_openapi(openapi::base())
        .merge(bounded)
        .merge(effective::router())
        .split_for_parts()
}

pub fn router(state: AppState, limits: &HttpLimits) -> Router {
    let (routes, _) = documented_routes(limits);
    // After routing (so the matched route is known); 404/405 answers need no credential.
    routes
        .route_layer(access::AuthenticateLayer {
            state: state.clone(),
        })
        // The console authenticates its own routes (a session cookie, then the same layer).
        .merge(crate::api::console::router(state.clone(), limits))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(track::TrackLayer)
        .layer(CatchPanicLayer::custom(track::panic_response))
        .with_state(state)
}

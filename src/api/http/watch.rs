//! `GET /api/v1/watch`: change events as Server-Sent Events, resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::ApiQuery;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::watch::WatchFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/watch", get(watch))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WatchParams {
    /// One id or a comma-separated list.
    config_id: Option<String>,
    prefix: Option<String>,
    /// One flag key or a comma-separated list.
    flag_key: Option<String>,
    /// Every flag's changes.
    #[serde(default)]
    flags: bool,
    /// Registry changes (`instance.*`) of one service or a comma-separated list.
    service: Option<String>,
    /// Registry changes of every service.
    #[serde(default)]
    registry: bool,
    /// The environment the watcher serves; with `instanceId`, where deployments are required,
    /// its config changes are the versions that instance is served.
    environment: Option<String>,
    instance_id: Option<String>,
    from_revision: Option<u64>,
}

async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<WatchParams>,
) -> Result<Response> {
    let split = |list: &Option<String>| -> Vec<String> {
        list.as_deref()
            .map(|items| items.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (config_ids, flag_keys) = (split(&params.config_id), split(&params.flag_key));
    let filter = WatchFilter::new(
        &config_ids.iter().map(String::as_str).collect::<Vec<_>>(),
        params.prefix.as_deref(),
        &flag_keys.iter().map(String::as_str).collect::<Vec<_>>(),
        params.flags,
        params.environment.as_deref(),
    )?
    .with_services(
        &split(&params.service)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        params.registry,
    )?
    .with_instance(params.instance_id.as_deref())?;
    let last_event_id = match headers.get("last-event-id") {
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError(Error::invalid(
                        "Last-Event-ID",
                        "Last-Event-ID must be a revision number",
                    ))
                })?,
        ),
        None => None,
    };
    // A reconnecting client's Last-Event-ID is newer than the fromRevision it first used.
    let from = last_event_id.or(params.from_revision);
    let events = state
        .service
        .watch(&caller, filter, from)
        .await?
        .map(|item| {
            let event = match item {
                Ok(change) => Event::default()
                    .id(change.revision.to_string())
                    .json_data(&change)
                    .unwrap_or_else(|_| Event::default().comment("unserializable event")),
                Err(error) => Event::default()
                    .event("error")
                    .data(format!("{{\"code\":\"{}\"}}", error.code().as_str())),
            };
            Ok::<_, Infallible>(event)
        });
    let shutdown = state.shutdown.clone().cancelled_owned();
    let stream = events.take_until(shutdown);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

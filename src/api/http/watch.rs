//! `GET /api/v1/watch`: change events as Server-Sent Events, resumable with `Last-Event-ID`, or
//! — when the request asks to upgrade — over a WebSocket (the same filters, resume and events;
//! one text message per event; pings every 15 s).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::ApiQuery;
use super::openapi as doc;
use crate::core::access::Caller;
use crate::core::error::Error;
use crate::core::watch::{WatchFilter, WatchStream};
use crate::telemetry::collector::OpenStream;

/// How often an idle WebSocket (or SSE stream) shows it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The largest message or frame a WebSocket watcher may send (it needs only control frames).
const MAX_CLIENT_MESSAGE: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(watch))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WatchParams {
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

#[utoipa::path(
    get,
    path = "/api/v1/watch",
    tag = "watch",
    operation_id = "watch",
    summary = "Follow change events (Server-Sent Events, or WebSocket messages after an upgrade)",
    params(WatchParams, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this revision (as `fromRevision`)")),
    responses(
        (status = 200, description = "`text/event-stream`: each event is a `data:` line holding a `ChangeEvent` with `id: <revision>`; an `error` event carries `{\"code\"}`", content_type = "text/event-stream", body = crate::core::events::ChangeEvent),
        (status = 101, description = "Upgraded to a WebSocket (`Upgrade: websocket`): each text message is a `ChangeEvent`"),
        doc::BadRequestOrNotFound
    )
)]
pub(crate) async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
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
    // Refusals (a bad revision, too many watchers) are answered before any upgrade.
    let mut changes = state.service.watch(&caller, filter, from).await?;
    // The stream outlives the request's authentication: it ends once that credential is
    // revoked or expires (the console's session carries its token here too).
    if let Some(credential) = super::access::bearer(&headers).filter(|_| state.access.enabled()) {
        changes = state
            .access
            .while_authenticated(credential.to_owned(), changes);
    }
    // Not an upgrade request (the rejection): Server-Sent Events.
    if let Ok(upgrade) = upgrade {
        let shutdown = state.shutdown.clone();
        // A watcher sends only control frames; a large message would only be held and dropped.
        return Ok(upgrade
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .on_upgrade(move |socket| websocket(socket, changes, shutdown))
            .into_response());
    }
    // An error is the stream's last event (docs/api.md): the client reconnects from the last
    // revision it has.
    let through_first_error = changes.scan(false, |failed, item| {
        let last = std::mem::replace(failed, item.is_err());
        std::future::ready((!last).then_some(item))
    });
    let events = through_first_error.map(|item| {
        let event = match item {
            Ok(change) => Event::default()
                .id(change.revision.to_string())
                .json_data(&*change)
                .unwrap_or_else(|_| Event::default().comment("unserializable event")),
            Err(error) => Event::default()
                .event("error")
                .data(format!("{{\"code\":\"{}\"}}", error.code().as_str())),
        };
        Ok::<_, Infallible>(event)
    });
    let shutdown = state.shutdown.clone().cancelled_owned();
    // Counted open while the stream lives (the closure owns the guard).
    let open = OpenStream::open("sse");
    let stream = events.take_until(shutdown).inspect(move |_| {
        let _ = &open;
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One watcher over a WebSocket: each change event as a text message (the SSE `data:` JSON);
/// a store failure as `{"error":{"code":…}}`, then a close; a ping every `KEEP_ALIVE`. The
/// client's pings are answered and its close ends the stream (reading does both).
async fn websocket(socket: WebSocket, mut changes: WatchStream, shutdown: CancellationToken) {
    let _open = OpenStream::open("websocket");
    let (mut sender, mut receiver) = socket.split();
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => Some(Message::Close(None)),
            incoming = receiver.next() => match incoming {
                // Pings are answered by the socket itself as they are read.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = keep_alive.tick() => Some(Message::Ping(Vec::new().into())),
            change = changes.next() => match change {
                Some(Ok(change)) => match serde_json::to_string(&*change) {
                    Ok(text) => Some(Message::Text(text.into())),
                    Err(_) => continue,
                },
                Some(Err(error)) => {
                    let text = format!("{{\"error\":{{\"code\":\"{}\"}}}}", error.code().as_str());
                    let _ = sender.send(Message::Text(text.into())).await;
                    Some(Message::Close(None))
                }
                None => Some(Message::Close(None)),
            },
        };
        let Some(message) = message else { continue };
        let closing = matches!(message, Message::Close(_));
        if sender.send(message).await.is_err() || closing {
            return;
        }
    }
}

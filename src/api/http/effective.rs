//! `GET /api/v1/configs/{id}/effective`: the hot read path, answered from memory.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::Result;
use super::extract::ConfigIdPath;
use crate::core::access::Caller;
use crate::core::effective::AssignmentInput;
use crate::core::error::Error;
use crate::core::ids::{Environment, InstanceId};
use crate::core::service::EffectiveQuery;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/configs/{id}/effective", get(effective))
}

/// The effective read's query, parsed by hand: this is the hot path. Unknown or repeated
/// parameters are refused like everywhere else.
#[derive(Default)]
struct EffectiveParams {
    environment: Option<String>,
    assignment_key: Option<String>,
    assignment_value: Option<f64>,
    resolve_secrets: bool,
    instance_id: Option<String>,
}

impl EffectiveParams {
    fn parse(query: Option<&str>) -> Result<Self> {
        let mut params = EffectiveParams::default();
        let mut seen = [false; 5];
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match name.as_ref() {
                "environment" => 0,
                "assignmentKey" => 1,
                "assignmentValue" => 2,
                "resolveSecrets" => 3,
                "instanceId" => 4,
                other => {
                    return Err(Error::invalid(
                        other,
                        "unknown query parameter; expected environment, assignmentKey, \
                         assignmentValue, resolveSecrets or instanceId",
                    )
                    .into());
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(Error::invalid(name.as_ref(), "parameter given more than once").into());
            }
            match slot {
                0 => params.environment = Some(value.into_owned()),
                1 => params.assignment_key = Some(value.into_owned()),
                2 => {
                    params.assignment_value = Some(value.parse().map_err(|_| {
                        Error::invalid(
                            "assignmentValue",
                            "assignmentValue must be a number in [0, 1)",
                        )
                    })?)
                }
                4 => {
                    let id = InstanceId::parse_field(&value, "instanceId")?;
                    params.instance_id = Some(id.to_string());
                }
                _ => {
                    params.resolve_secrets = match value.as_ref() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(Error::invalid(
                                "resolveSecrets",
                                "resolveSecrets must be true or false",
                            )
                            .into());
                        }
                    }
                }
            }
        }
        Ok(params)
    }

    fn into_query(self) -> Result<EffectiveQuery> {
        let environment = self
            .environment
            .as_deref()
            .map(Environment::parse)
            .transpose()?;
        let assignment = match (self.assignment_key, self.assignment_value) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "assignmentValue",
                    "give assignmentKey or assignmentValue, not both",
                )
                .into());
            }
            (Some(key), None) => AssignmentInput::key(key)?,
            (None, Some(value)) => AssignmentInput::Value(value),
            (None, None) => AssignmentInput::None,
        };
        Ok(EffectiveQuery {
            environment,
            assignment,
            resolve_secrets: self.resolve_secrets,
            instance_id: self.instance_id,
        })
    }
}

/// Only the `If-None-Match` header: cloning the whole header map costs more than this read.
struct IfNoneMatch(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts.headers.get(header::IF_NONE_MATCH).cloned(),
        ))
    }
}

/// True when `If-None-Match` lists `etag` (weak or strong) or `*`.
pub(super) fn not_modified(header: &HeaderValue, etag: &str) -> bool {
    header
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

async fn effective(
    State(state): State<AppState>,
    caller: Caller,
    ConfigIdPath(id): ConfigIdPath,
    uri: Uri,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response> {
    let query = EffectiveParams::parse(uri.query())?.into_query()?;
    let result = state.service.effective(&caller, &id, &query).await?;
    let (document, etag_text) = result.document();
    let etag = HeaderValue::from_str(&etag_text).map_err(Error::internal)?;
    if result.resolved.is_none() && if_none_match.is_some_and(|v| not_modified(&v, &etag_text)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag);
        super::mark_if_stale(&state, &mut response);
        return Ok(response);
    }
    let mut response = document.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if result.stale {
        headers.insert(super::STALE_HEADER, HeaderValue::from_static("true"));
    }
    if result.resolved.is_some() {
        // Resolved secrets must not be cached anywhere along the way.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

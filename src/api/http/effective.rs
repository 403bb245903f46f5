//! `GET /api/v1/configs/{id}/effective`: the hot read path, answered from memory.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::AppState;
use super::error::Result;
use super::extract::{ApiQuery, ConfigIdPath};
use crate::core::effective::{Assignment, AssignmentInput};
use crate::core::error::Error;
use crate::core::ids::Environment;
use crate::core::service::EffectiveQuery;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/configs/{id}/effective", get(effective))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EffectiveParams {
    environment: Option<String>,
    assignment_key: Option<String>,
    assignment_value: Option<f64>,
    #[serde(default)]
    resolve_secrets: bool,
}

impl EffectiveParams {
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
            (Some(key), None) if key.is_empty() || key.len() > 1024 => {
                return Err(Error::invalid(
                    "assignmentKey",
                    "assignmentKey must be 1 to 1024 bytes",
                )
                .into());
            }
            (Some(key), None) => AssignmentInput::Key(key),
            (None, Some(value)) => AssignmentInput::Value(value),
            (None, None) => AssignmentInput::None,
        };
        Ok(EffectiveQuery {
            environment,
            assignment,
            resolve_secrets: self.resolve_secrets,
        })
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ConfigBody<'a> {
    Rendered(&'a RawValue),
    Resolved(&'a Value),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EffectiveBody<'a> {
    config_id: &'a str,
    version: u64,
    environment: Option<&'a str>,
    effective_config: ConfigBody<'a>,
    checksum: &'a str,
    assignment: &'a Assignment,
}

/// True when `If-None-Match` lists `etag` (weak or strong) or `*`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

async fn effective(
    State(state): State<AppState>,
    ConfigIdPath(id): ConfigIdPath,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<EffectiveParams>,
) -> Result<Response> {
    let query = params.into_query()?;
    let result = state.service.effective(&id, &query).await?;
    let etag = format!("\"{}\"", result.rendered.checksum);
    if result.resolved.is_none() && not_modified(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex etag"),
        );
        return Ok(response);
    }
    let body = EffectiveBody {
        config_id: result.config_id.as_str(),
        version: result.version,
        environment: result.environment.as_deref(),
        effective_config: match &result.resolved {
            Some(resolved) => ConfigBody::Resolved(resolved),
            None => ConfigBody::Rendered(&result.rendered.json),
        },
        checksum: &result.rendered.checksum,
        assignment: &result.assignment,
    };
    let bytes = serde_json::to_vec(&body).map_err(Error::internal)?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if result.resolved.is_some() {
        // Resolved secrets must not be cached anywhere along the way.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        headers.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex etag"),
        );
    }
    Ok(response)
}

//! `GET /api/v1/configs/{id}/effective`: the hot read path, answered from memory.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::Result;
use super::extract::PathId;
use super::openapi as doc;
use super::query::optional_environment;
use crate::core::access::Caller;
use crate::core::effective::AssignmentInput;
use crate::core::error::Error;
use crate::core::ids::{ConfigId, InstanceId};
use crate::core::service::EffectiveQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(effective))
}

/// The effective read's query, parsed by hand: this is the hot path. Unknown or repeated
/// parameters are refused like everywhere else. Values borrow from the query unless they had
/// to be decoded.
#[derive(Default)]
struct EffectiveParams<'q> {
    environment: Option<Cow<'q, str>>,
    assignment_key: Option<Cow<'q, str>>,
    assignment_value: Option<f64>,
    resolve_secrets: bool,
    instance_id: Option<String>,
}

/// The query's `name=value` pairs, split and decoded as `application/x-www-form-urlencoded`
/// (`form_urlencoded::parse`): empty pairs skipped, a pair without `=` has an empty value,
/// `+` is a space, percent-escapes are decoded, invalid UTF-8 is replaced. A part with
/// nothing to decode is borrowed as it is: the query is already text.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decoded(name), form_decoded(value))
        })
}

fn form_decoded(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

impl<'q> EffectiveParams<'q> {
    fn parse(query: Option<&'q str>) -> Result<Self> {
        let mut params = EffectiveParams::default();
        let mut seen = [false; 5];
        for (name, value) in query_pairs(query.unwrap_or_default()) {
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
                0 => params.environment = Some(value),
                1 => params.assignment_key = Some(value),
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
        let environment = optional_environment(self.environment.as_deref())?;
        let assignment = match (self.assignment_key, self.assignment_value) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "assignmentValue",
                    "give assignmentKey or assignmentValue, not both",
                )
                .into());
            }
            (Some(key), None) => AssignmentInput::key(key.into_owned())?,
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

#[utoipa::path(
    get,
    path = "/api/v1/configs/{id}/effective",
    tag = "effective",
    operation_id = "getEffectiveConfig",
    summary = "What an instance gets: the effective config for an environment and assignment",
    params(doc::ConfigIdPath, ("environment" = Option<String>, Query, description = "The environment whose override (and canary, A/B test) applies"), ("assignmentKey" = Option<String>, Query, description = "A stable key (user, instance) bucketed into the canary and the A/B variants"), ("assignmentValue" = Option<f64>, Query, description = "Instead of a key: a point in [0, 1) standing for bucket / 2^64"), ("resolveSecrets" = Option<bool>, Query, description = "Resolve `{\"$secret\": …}` references (needs the permission; the answer is then never cached)"), ("instanceId" = Option<String>, Query, description = "The asking instance, for deployments that assign it a version"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 when unchanged")),
    responses(
        (status = 200, description = "The effective config", body = crate::core::effective::EffectiveDocument, headers(("ETag" = String, description = "Strong ETag of the answer (absent when secrets were resolved)"), ("summit-stale" = String, description = "`true` when answered from the read cache while the store is unreachable"), ("Cache-Control" = String, description = "`no-store` when secrets were resolved"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag", headers(("ETag" = String))),
        doc::BadRequestOrNotFound,
        (status = 422, response = doc::Unprocessable),
        (status = 502, response = doc::BadGateway)
    )
)]
async fn effective(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ConfigId>,
    uri: Uri,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response> {
    answer(&state, &caller, &id, uri.query(), if_none_match.as_ref()).await
}

async fn answer(
    state: &AppState,
    caller: &Caller,
    id: &ConfigId,
    query: Option<&str>,
    if_none_match: Option<&HeaderValue>,
) -> Result<Response> {
    let query = EffectiveParams::parse(query)?.into_query()?;
    let result = state.service.effective(caller, id, query).await?;
    let (document, etag) = result.document();
    let etag = HeaderValue::from_maybe_shared(etag).map_err(Error::internal)?;
    let etag_text = etag.to_str().map_err(Error::internal)?;
    if result.resolved.is_none() && if_none_match.is_some_and(|v| not_modified(v, etag_text)) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag.clone());
        super::mark_if_stale(state, &mut response);
        return Ok(response);
    }
    let mut response = Response::new(Body::from(document));
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

/// The still percent-encoded `{id}` segment of an effective read's path (`None` for anything
/// else of that shape, such as an empty id, which the router answers).
pub(crate) fn raw_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/api/v1/configs/")?
        .strip_suffix("/effective")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The effective read answered ahead of the router (`direct::serve`, which authenticated the
/// caller and records a refusal): the path's id decoded as `PathId<ConfigId>` decodes it, then
/// the routed handler's `answer`.
pub(crate) async fn direct(state: &AppState, caller: &Caller, request: &Parts) -> Response {
    let if_none_match = request.headers.get(header::IF_NONE_MATCH);
    let answered = match decoded_id(request.uri.path()) {
        Ok(id) => answer(state, caller, &id, request.uri.query(), if_none_match).await,
        Err(error) => Err(error),
    };
    answered.unwrap_or_else(IntoResponse::into_response)
}

/// The `{id}` segment decoded and parsed as `PathId<ConfigId>` does for the routed request.
fn decoded_id(path: &str) -> Result<ConfigId> {
    let raw = raw_id(path).unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::invalid("configId", "Invalid UTF-8 in `id`"))?;
    Ok(ConfigId::parse(&decoded)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_as_form_urlencoded_does() {
        let queries = [
            "",
            "&",
            "environment=production&assignmentKey=user-1",
            "a=b=c",
            "noequals",
            "=x",
            "&&environment=prod&&",
            "assignmentKey=a+b%20c%2Bd",
            "assignmentKey=%E2%82%AC",
            "assignmentKey=%ff%fe",
            "assignmentKey=%zz%2",
            "assign%6dentKey=x",
            "k=v+&x+y=%26",
            "environment=%",
        ];
        for query in queries {
            let ours: Vec<(String, String)> = query_pairs(query)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let reference: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, reference, "query {query:?}");
        }
    }

    #[test]
    fn only_values_with_something_to_decode_are_copied() {
        let pairs: Vec<_> = query_pairs("environment=production&assignmentKey=a%20b").collect();
        assert!(matches!(pairs[0].1, Cow::Borrowed("production")));
        assert!(matches!(&pairs[1].1, Cow::Owned(value) if value == "a b"));
    }
}

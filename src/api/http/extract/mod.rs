//! Extractors that turn every kind of bad input into a problem naming the field.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, transport_problem};
use crate::core::error::Error;

mod members;
mod path;
mod unique;

use members::duplicate_member;

pub use path::{FromPathSegment, PathId, PathParams, path_param};
pub use unique::{ContextBody, OnePassJson, RefusesDuplicates, UniqueValue, parse_json_once};

/// Bodies nested deeper than this are refused before parsing.
pub const MAX_JSON_DEPTH: usize = 64;

/// A JSON body: size-limited (413), depth-limited, strictly typed, errors naming the pointer.
pub struct ApiJson<T>(pub T);

/// A query string, strictly typed, errors naming the parameter.
pub struct ApiQuery<T>(pub T);

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                crate::core::secrets::push_token(&mut pointer, &index.to_string())
            }
            Segment::Map { key } => crate::core::secrets::push_token(&mut pointer, key),
            Segment::Enum { variant } => crate::core::secrets::push_token(&mut pointer, variant),
            Segment::Unknown => {}
        }
    }
    crate::core::secrets::pointer_or_root(&pointer)
}

/// Nesting depth of a JSON text, counted without parsing it.
fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A deserialization error as `invalid_input` naming the JSON pointer of the offending value.
fn shape_error<E: serde::de::Error + std::fmt::Display>(e: serde_path_to_error::Error<E>) -> Error {
    let mut pointer = pointer_of(e.path());
    let message = e.into_inner().to_string();
    // serde reports a missing field at its parent; name the field itself.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        if pointer == "/" {
            pointer.clear();
        }
        crate::core::secrets::push_token(&mut pointer, field);
    }
    Error::invalid(pointer, message)
}

/// Types an already parsed (size- and depth-checked) JSON value, errors naming the pointer
/// under `base` (e.g. a member split off the body).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, base: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| match shape_error(e) {
        Error::InvalidInput { field, message } => {
            let field = if field == "/" {
                base.to_owned()
            } else {
                format!("{base}{field}")
            };
            Error::invalid(
                if field.is_empty() {
                    "/".to_owned()
                } else {
                    field
                },
                message,
            )
        }
        other => other,
    })
}

/// `bytes` as a `T`, or `None` when they are not one (without saying why).
fn typed<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid("/", "a JSON request body is required"));
    }
    if json_depth_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(Error::invalid(
            "/",
            format!("JSON is nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if let Some(duplicate) = duplicate_member(bytes) {
        return Err(Error::invalid(
            duplicate.pointer,
            format!(
                "duplicate member name {:?}: member names must be unique (RFC 7493, I-JSON)",
                duplicate.name
            ),
        ));
    }
    // Bodies are almost always well-formed: parse without tracking the path (which copies
    // every member name on the way), and only on a failure parse again to name the pointer.
    if let Some(value) = typed(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            let message = format!("malformed JSON: {inner}");
            return Error::invalid(pointer_of(e.path()), message);
        }
        shape_error(e)
    })?;
    deserializer
        .end()
        .map_err(|e| Error::invalid("/", format!("malformed JSON: {e}")))?;
    Ok(value)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    AppState: FromRef<S>,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// An optional JSON body: absent (or blank) is `None`; otherwise as `ApiJson`.
pub struct OptionalApiJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    AppState: FromRef<S>,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(None));
        }
        Ok(OptionalApiJson(Some(parse_json(&bytes)?)))
    }
}

/// Why a JSON body was refused: bad input (a core error), or a body declared as a media type
/// that is not JSON, which only HTTP has (415).
#[derive(Debug)]
pub enum BodyRejection {
    Invalid(ApiError),
    UnsupportedMediaType { declared: String },
}

impl From<Error> for BodyRejection {
    fn from(error: Error) -> Self {
        BodyRejection::Invalid(ApiError(error))
    }
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        match self {
            BodyRejection::Invalid(error) => error.into_response(),
            BodyRejection::UnsupportedMediaType { declared } => transport_problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "the body is declared as {declared:?}; send JSON with Content-Type: \
                     application/json (or application/*+json)"
                ),
            ),
        }
    }
}

/// The body, size-limited, refused when it is not blank and its declared media type is not JSON.
/// A body without a `Content-Type` is taken as JSON.
async fn read_json_body<S>(req: Request, state: &S) -> Result<Bytes, BodyRejection>
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    let not_json = declared_media_type(req.headers())
        .filter(|declared| !is_json_media_type(declared))
        .map(Cow::into_owned);
    let bytes = read_body(req, state).await?;
    match not_json {
        Some(declared) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            Err(BodyRejection::UnsupportedMediaType { declared })
        }
        _ => Ok(bytes),
    }
}

/// The `Content-Type` without parameters (`application/json` of
/// `application/json; charset=utf-8`); a value that is not text stays unreadable, never JSON.
fn declared_media_type(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let value: &HeaderValue = headers.get(header::CONTENT_TYPE)?;
    Some(match value.to_str() {
        Ok(text) => Cow::Borrowed(text.split(';').next().unwrap_or_default().trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(value.as_bytes()).into_owned()),
    })
}

/// `application/json` or a structured `application/*+json` type (RFC 6839), in any case.
fn is_json_media_type(essence: &str) -> bool {
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let structured = |subtype: &str| {
        subtype.len() > "+json".len()
            && subtype.as_bytes()[subtype.len() - "+json".len()..].eq_ignore_ascii_case(b"+json")
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || structured(subtype))
}

/// A raw body, size-limited like `ApiJson` (413 as problem+json), for handlers that parse it
/// themselves.
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(RawBody(read_body(req, state).await?))
    }
}

/// The body, at most the server's `max_body_bytes` (413 past it), whatever `DefaultBodyLimit`
/// the request carries: the limit is the server's, so a request answered ahead of the router
/// needs no limit layer. A body that fails to arrive is a 400 with axum's words for it.
async fn read_body<S>(req: Request, state: &S) -> Result<Bytes, Error>
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    let limit = AppState::from_ref(state).max_body_bytes;
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Error::PayloadTooLarge { limit }),
        Err(error) => Err(Error::invalid(
            "/",
            format!("Failed to buffer the request body: {error}"),
        )),
    }
}

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                "query".to_owned()
            } else {
                field
            };
            Error::invalid(
                field,
                format!("invalid query parameter: {}", e.into_inner()),
            )
        })?;
        Ok(ApiQuery(value))
    }
}

#[cfg(test)]
mod tests;

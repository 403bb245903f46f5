//! Extractors that turn every kind of bad input into a problem naming the field.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::core::error::Error;
use crate::core::ids::ConfigId;

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
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
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
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(None));
        }
        Ok(OptionalApiJson(Some(parse_json(&bytes)?)))
    }
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

async fn read_body<S>(req: Request, state: &S) -> Result<Bytes, Error>
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    let limit = AppState::from_ref(state).max_body_bytes;
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge { limit }
        } else {
            Error::invalid("/", rejection.body_text())
        }
    })
}

/// The raw value of the path parameter `name` ("" when the route has none).
pub fn path_param<'a>(params: &'a RawPathParams, name: &str) -> &'a str {
    params
        .iter()
        .find_map(|(param, value)| (param == name).then_some(value))
        .unwrap_or_default()
}

/// A `{id}` path segment that is a valid config id; checked before the body is read.
pub struct ConfigIdPath(pub ConfigId);

impl<S: Send + Sync> FromRequestParts<S> for ConfigIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| Error::invalid("configId", r.body_text()))?;
        Ok(ConfigIdPath(ConfigId::parse(path_param(&params, "id"))?))
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
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(json_depth_exceeds(deep.as_bytes(), 64));
        let shallow = "[".repeat(64) + &"]".repeat(64);
        assert!(!json_depth_exceeds(shallow.as_bytes(), 64));
        let in_string = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(100));
        assert!(!json_depth_exceeds(in_string.as_bytes(), 64));
    }
}

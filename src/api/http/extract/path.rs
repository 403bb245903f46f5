//! Ids a route takes from its path, each parsed by its own type before the body is read.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::super::error::ApiError;
use crate::core::error::{Error, Result};
use crate::core::ids::{ConfigId, FlagKey, SecretName, ServiceName, StrategyName};

/// The raw value of the path parameter `name` ("" when the route has none).
pub fn path_param<'a>(params: &'a RawPathParams, name: &str) -> &'a str {
    params
        .iter()
        .find_map(|(param, value)| (param == name).then_some(value))
        .unwrap_or_default()
}

/// An id a route takes from its path.
pub trait FromPathSegment: Sized {
    /// The route's parameter: `{id}`, `{key}`, `{name}`, `{service}`.
    const PARAM: &'static str;
    /// The field a path that cannot be decoded at all (bad percent-escapes) names.
    const FIELD: &'static str;

    /// The id, or a 400 naming what is wrong with it.
    fn from_segment(raw: &str) -> Result<Self>;
}

/// The path's `T::PARAM` segment as a valid `T`, parsed (after percent-decoding) before the
/// body is read.
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: FromPathSegment> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| Error::invalid(T::FIELD, r.body_text()))?;
        Ok(PathId(T::from_segment(path_param(&params, T::PARAM))?))
    }
}

impl FromPathSegment for ConfigId {
    const PARAM: &'static str = "id";
    const FIELD: &'static str = "configId";

    fn from_segment(raw: &str) -> Result<Self> {
        ConfigId::parse(raw)
    }
}

impl FromPathSegment for FlagKey {
    const PARAM: &'static str = "key";
    const FIELD: &'static str = "flagKey";

    fn from_segment(raw: &str) -> Result<Self> {
        FlagKey::parse(raw)
    }
}

impl FromPathSegment for SecretName {
    const PARAM: &'static str = "name";
    const FIELD: &'static str = "name";

    fn from_segment(raw: &str) -> Result<Self> {
        SecretName::parse(raw)
    }
}

impl FromPathSegment for StrategyName {
    const PARAM: &'static str = "name";
    const FIELD: &'static str = "name";

    fn from_segment(raw: &str) -> Result<Self> {
        StrategyName::parse(raw)
    }
}

impl FromPathSegment for ServiceName {
    const PARAM: &'static str = "service";
    const FIELD: &'static str = "service";

    fn from_segment(raw: &str) -> Result<Self> {
        ServiceName::parse_field(raw, "service")
    }
}

/// Path parameters of routes whose ids the core checks itself (deployments, webhooks): axum's
/// `Path`, with a segment that cannot be decoded (bad percent-escapes, invalid UTF-8) answered
/// as a problem naming the path, like every other bad input.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let axum::extract::Path(params) =
            axum::extract::Path::<T>::from_request_parts(parts, state)
                .await
                .map_err(|r| Error::invalid("path", r.body_text()))?;
        Ok(PathParams(params))
    }
}

//! Query-parameter sets several routes share.

use serde::Deserialize;

use super::error::Result;
use crate::core::ids::Environment;
use crate::core::service::page_limit;

/// `?limit=&cursor=`: one page of a list, newest first.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<u64>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32> {
        Ok(page_limit(self.limit)?)
    }
}

/// `?environment=`: one environment's view instead of every environment's.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentQuery {
    environment: Option<String>,
}

impl EnvironmentQuery {
    pub fn environment(&self) -> Result<Option<Environment>> {
        optional_environment(self.environment.as_deref())
    }
}

/// An environment parameter that may be absent, errors naming `environment`.
pub fn optional_environment(text: Option<&str>) -> Result<Option<Environment>> {
    Ok(text.map(Environment::parse).transpose()?)
}

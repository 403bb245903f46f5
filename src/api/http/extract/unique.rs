//! Bodies read in one pass: a body type that refuses a repeated member name as it is read needs
//! no walk over the body for duplicates before it is typed.

use axum::extract::{FromRef, FromRequest, Request};
use serde::de::Visitor;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, Error as _, MapAccess, SeqAccess};
use serde_json::{Map, Number, Value};

use super::{BodyRejection, MAX_JSON_DEPTH, json_depth_exceeds, parse_json, read_json_body, typed};
use crate::api::http::AppState;
use crate::core::error::{Error, Result as CoreResult};
use crate::core::flags::EvaluationContext;
use crate::core::flags::context::Attributes;

/// A body type whose own deserialization refuses every duplicate member name (RFC 7493): it
/// denies unknown fields (serde refuses a repeated known field by itself), and its free-form
/// members are [`UniqueValue`]s.
pub trait RefusesDuplicates: DeserializeOwned {}

/// `parse_json` in one pass over the body for a type that refuses duplicates as it is read. A
/// body it refuses is read again by `parse_json`, which names the problem as for any body.
pub fn parse_json_once<T: RefusesDuplicates>(bytes: &[u8]) -> Result<T, Error> {
    if !json_depth_exceeds(bytes, MAX_JSON_DEPTH)
        && let Some(value) = typed(bytes)
    {
        return Ok(value);
    }
    parse_json(bytes)
}

/// `ApiJson` for a body type that refuses duplicates as it is read (`parse_json_once`).
pub struct OnePassJson<T>(pub T);

impl<S, T> FromRequest<S> for OnePassJson<T>
where
    S: Send + Sync,
    T: RefusesDuplicates,
    AppState: FromRef<S>,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        Ok(OnePassJson(parse_json_once(&bytes)?))
    }
}

/// A JSON value as `serde_json::Value` reads it, but refusing a member name repeated in any of
/// its objects, at any depth, in the pass that builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueValue(pub Value);

impl RefusesDuplicates for UniqueValue {}

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(UniqueValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let UniqueValue(value) = map.next_value()?;
            if members.insert(name, value).is_some() {
                return Err(A::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(members))
    }
}

/// An evaluation context as a request body gives it, read in the pass that reads the body: an
/// object's members go straight into the context's attribute list (no map is built and taken
/// apart), refusing a member name repeated at any depth; anything else is kept as a value for
/// the context's own checks to refuse.
#[derive(Debug)]
pub enum ContextBody {
    Members(Attributes),
    Other(Value),
}

impl ContextBody {
    /// The context; `field` names it in errors.
    pub fn into_context(self, field: &str) -> CoreResult<EvaluationContext> {
        match self {
            ContextBody::Members(attributes) => {
                EvaluationContext::from_attributes(attributes, field)
            }
            ContextBody::Other(value) => EvaluationContext::from_json(value, field),
        }
    }
}

impl<'de> Deserialize<'de> for ContextBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ContextVisitor)
    }
}

struct ContextVisitor;

impl<'de> Visitor<'de> for ContextVisitor {
    type Value = ContextBody;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ContextBody, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(name) = map.next_key::<String>()? {
            let UniqueValue(value) = map.next_value()?;
            members.push((name, value));
        }
        Attributes::from_members(members)
            .map(ContextBody::Members)
            .map_err(|name| A::Error::custom(format!("duplicate member name {name:?}")))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<ContextBody, E> {
        UniqueVisitor.visit_bool(value).map(ContextBody::Other)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<ContextBody, E> {
        UniqueVisitor.visit_i64(value).map(ContextBody::Other)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<ContextBody, E> {
        UniqueVisitor.visit_u64(value).map(ContextBody::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<ContextBody, E> {
        UniqueVisitor.visit_f64(value).map(ContextBody::Other)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<ContextBody, E> {
        UniqueVisitor.visit_str(value).map(ContextBody::Other)
    }

    fn visit_unit<E>(self) -> Result<ContextBody, E> {
        Ok(ContextBody::Other(Value::Null))
    }

    fn visit_none<E>(self) -> Result<ContextBody, E> {
        Ok(ContextBody::Other(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<ContextBody, D::Error> {
        deserializer.deserialize_any(ContextVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ContextBody, A::Error> {
        UniqueVisitor.visit_seq(seq).map(ContextBody::Other)
    }
}

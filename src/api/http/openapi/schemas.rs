//! Schemas the derives cannot give: the core types with a hand-written `Serialize` (a version,
//! an audit record, a change event), and the envelopes the handlers build with `json!` (each
//! mirrors its literal field for field; the handler named in its comment is the source).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::core::deployments::model::StrategyRef;
use crate::core::deployments::strategy::Strategy;
use crate::core::events::{AffectedInstances, ChangeEvent};
use crate::core::flags::FlagDefinition;
use crate::core::model::{AuditRecord, Metadata};
use crate::core::versioned::{Document, DocumentId, DocumentKind, Version};

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(0))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn timestamp() -> ObjectBuilder {
    string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
        utoipa::openapi::KnownFormat::DateTime,
    )))
}

fn strings() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new().items(string())
}

/// The fields of `ChangeDetails`, which an event and an audit record carry inline.
fn with_change_details(object: ObjectBuilder) -> ObjectBuilder {
    object
        .property(
            "previousVersion",
            integer().description(Some("The version live before the change")),
        )
        .property(
            "changes",
            ObjectBuilder::new().description(Some(
                "The RFC 6902 patch from the previous version's document to the new one",
            )),
        )
        .property(
            "changesElided",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .description(Some(
                    "The patch was too large and left out (read it with /diff)",
                )),
        )
        .property(
            "affectedInstances",
            Ref::from_schema_name(AffectedInstances::name()),
        )
}

const SUBJECT: &str = "The subject is named by its kind: `configId`, `flagKey` (`flag.*`), \
    `secretName` (`secret.*`), `instance` (`service/instance`, `instance.*`), `strategy` \
    (`strategy.*`) or `webhookId` (`webhook.*`); exactly one of them is present.";

fn subjects(object: ObjectBuilder) -> ObjectBuilder {
    [
        "configId",
        "flagKey",
        "secretName",
        "instance",
        "strategy",
        "webhookId",
    ]
    .into_iter()
    .fold(object, |object, name| object.property(name, string()))
}

impl PartialSchema for ChangeEvent {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .description(Some(format!(
                "One committed change, numbered by the global revision. {SUBJECT}"
            )))
            .property("revision", integer())
            .property(
                "kind",
                string().description(Some("`config.updated`, `flag.deleted`, …")),
            )
            .property("version", integer())
            .property("checksum", string())
            .property("actor", string())
            .property("message", string())
            .property("at", timestamp())
            .property(
                "environments",
                strings().description(Some(
                    "Environments whose effective config the change touched (`*`: every one)",
                )),
            )
            .required("revision")
            .required("kind")
            .required("version")
            .required("checksum")
            .required("actor")
            .required("at")
            .required("environments");
        with_change_details(subjects(object)).build().into()
    }
}

impl ToSchema for ChangeEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            AffectedInstances::name().into(),
            AffectedInstances::schema(),
        ));
    }
}

impl PartialSchema for AuditRecord {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .description(Some(format!("One append-only audit record. {SUBJECT}")))
            .property("id", integer())
            .property("revision", integer())
            .property("at", timestamp())
            .property("actor", string())
            .property("action", string())
            .property("version", integer())
            .property("environments", strings())
            .property("message", string())
            .property(
                "onBehalfOf",
                string().description(Some(
                    "The `metadata.actor` the client named, when it differs from the \
                     authenticated actor",
                )),
            )
            .required("id")
            .required("revision")
            .required("at")
            .required("actor")
            .required("action")
            .required("environments");
        with_change_details(subjects(object)).build().into()
    }
}

impl ToSchema for AuditRecord {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            AffectedInstances::name().into(),
            AffectedInstances::schema(),
        ));
    }
}

/// A version: the document's fields beside the version's own (see `Version`'s `Serialize`).
impl<D: Document + ToSchema> PartialSchema for Version<D> {
    fn schema() -> RefOr<Schema> {
        let own = ObjectBuilder::new()
            .description(Some(format!(
                "One immutable version of a {}: the document's fields beside the version's own",
                D::NAME
            )))
            .property(<D::Id as DocumentId>::FIELD, string())
            .property("version", integer())
            .property("metadata", Ref::from_schema_name(Metadata::name()))
            .property(
                "checksum",
                string().description(Some(
                    "Lowercase hex SHA-256 of the RFC 8785 form of the whole document",
                )),
            )
            .property("createdAt", timestamp())
            .property(
                "rollbackOf",
                integer().description(Some("The version a rollback restored")),
            )
            .required(<D::Id as DocumentId>::FIELD)
            .required("version")
            .required("metadata")
            .required("checksum")
            .required("createdAt");
        beside(D::schema(), own)
    }
}

/// `document`'s fields and `own`'s in one object. Not `allOf`: a document that refuses
/// unknown fields (`additionalProperties: false`) would refuse `own`'s there.
fn beside(document: RefOr<Schema>, own: ObjectBuilder) -> RefOr<Schema> {
    let mut own = own.build();
    match document {
        RefOr::T(Schema::Object(document)) => {
            own.additional_properties = document.additional_properties;
            own.properties.extend(document.properties);
            own.required.extend(document.required);
            RefOr::T(Schema::Object(own))
        }
        other => {
            let all_of = AllOfBuilder::new().item(other).item(own).build();
            RefOr::T(Schema::AllOf(all_of))
        }
    }
}

impl<D: Document + ToSchema> ToSchema for Version<D> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(match D::KIND {
            DocumentKind::Config => "ConfigVersion",
            DocumentKind::Flag => "FlagVersion",
            DocumentKind::Secret => "SecretVersion",
            DocumentKind::Strategy => "StrategyVersion",
        })
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((D::name().into(), D::schema()));
        D::schemas(schemas);
        schemas.push((Metadata::name().into(), Metadata::schema()));
    }
}

/// `{"items": [...]}` (`json!` in the list handlers).
#[derive(ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `{"items": [...], "nextCursor": n | null}`: pass `nextCursor` back as `cursor` for the next
/// page (`json!` in the deployment and strategy-version lists).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<u64>,
}

/// `DELETE /api/v1/configs/{id}` (`configs::delete_config`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDeleted {
    pub config_id: String,
    /// The version that records the delete.
    pub version: u64,
    pub deleted: bool,
}

/// `DELETE /api/v1/feature-flags/{key}` (`flags::delete_flag`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagDeleted {
    pub flag_key: String,
    pub deleted: bool,
}

/// `DELETE /api/v1/secrets/{name}` (`secrets::delete`).
#[derive(ToSchema)]
pub struct SecretDeleted {
    pub name: String,
    pub version: u64,
    pub deleted: bool,
}

/// `DELETE /api/v1/tokens/{id}` (`tokens::revoke_token`).
#[derive(ToSchema)]
pub struct TokenRevoked {
    pub id: String,
    pub revoked: bool,
}

/// `PUT …/instances/{id}/heartbeat` (`registry::heartbeat`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    pub service_name: String,
    pub instance_id: String,
    pub status: crate::core::registry::model::Status,
    pub healthy: bool,
    pub last_heartbeat: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `GET /api/v1/registry/services` (`registry::services`).
#[derive(ToSchema)]
pub struct ServiceList {
    pub services: Vec<crate::core::registry::model::ServiceSummary>,
}

/// `GET /api/v1/registry/services/{service}` (`registry::service`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInstances {
    pub service_name: String,
    pub instances: Vec<crate::core::registry::model::Instance>,
}

/// `GET …/services/{service}/url` (`registry::balanced_url`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalancedUrl {
    pub service_name: String,
    pub instance_id: String,
    pub url: String,
    pub weight: u32,
}

/// `POST …/services/{service}/health` (`registry::check_health`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResults {
    pub service_name: String,
    pub results: Vec<crate::core::registry::model::CheckResult>,
}

/// `GET /api/v1/configs/{id}/releases` (`deployments::releases`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Releases {
    pub config_id: String,
    pub items: Vec<crate::core::deployments::service::ReleaseView>,
}

/// `GET /health` (`ops::health`).
#[derive(ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the store does not answer (then the status is 503).
    pub status: String,
    /// Whether the store answers.
    pub store: bool,
    /// The latest revision (null when the store does not answer).
    pub revision: Option<u64>,
    /// The server's version.
    pub version: String,
}

/// `GET /live`, `GET /ready` (`ops::live`, `ops::ready`).
#[derive(ToSchema)]
pub struct ProbeStatus {
    /// `ok` (live) or `ready`.
    pub status: String,
}

/// An OFREP evaluation error (`ofrep::OfrepError`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepError {
    pub key: Option<String>,
    /// `FLAG_NOT_FOUND`, `PARSE_ERROR`, `TARGETING_KEY_MISSING`, `INVALID_CONTEXT`,
    /// `TYPE_MISMATCH`, `GENERAL`.
    pub error_code: String,
    pub error_details: String,
}

/// A failure of the service behind OFREP (store unavailable, refused, internal), with the
/// status the error maps to (`ofrep::Failure::Service`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepGeneralError {
    pub error_details: String,
}

/// One flag of an OFREP bulk evaluation: a success or an error (`ofrep::item`).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum OfrepItem {
    Success(crate::api::http::ofrep::Success<'static>),
    Error(OfrepError),
}

/// `POST /ofrep/v1/evaluate/flags` (`ofrep::evaluate_flags`).
#[derive(ToSchema)]
pub struct OfrepBulk {
    pub flags: Vec<OfrepItem>,
}

/// `GET /ofrep/v1/configuration` (`ofrep::configuration`): what the provider may rely on.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepConfiguration {
    pub name: String,
    #[schema(value_type = Object)]
    pub capabilities: Value,
}

/// `PUT /api/v1/feature-flags/{key}`: the definition's fields beside `metadata` and
/// `expectedVersion` (`flags::split_write_body`).
pub struct FlagWrite;

impl PartialSchema for FlagWrite {
    fn schema() -> RefOr<Schema> {
        let own = ObjectBuilder::new()
            .description(Some(
                "A flag definition's fields beside `metadata` and `expectedVersion`",
            ))
            .property("metadata", Ref::from_schema_name(Metadata::name()))
            .property(
                "expectedVersion",
                integer().description(Some("Write only if this is the current version")),
            )
            .required("metadata");
        beside(FlagDefinition::schema(), own)
    }
}

impl ToSchema for FlagWrite {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((FlagDefinition::name().into(), FlagDefinition::schema()));
        FlagDefinition::schemas(schemas);
        schemas.push((Metadata::name().into(), Metadata::schema()));
    }
}

/// An OFREP request body, `{"context": {...}}`; an empty body is an empty context
/// (`ofrep::request_of`).
#[derive(ToSchema)]
pub struct OfrepRequest {
    /// The evaluation context: `targetingKey` and attributes; `environment` and `service`
    /// choose the scope.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// A strategy's name (built-in or stored), or a strategy given inline (`StrategyRef`'s
/// `Deserialize`).
impl PartialSchema for StrategyRef {
    fn schema() -> RefOr<Schema> {
        let one_of = utoipa::openapi::schema::OneOfBuilder::new()
            .item(string().description(Some("A strategy's name")))
            .item(Ref::from_schema_name(Strategy::name()))
            .build();
        RefOr::T(Schema::OneOf(one_of))
    }
}

impl ToSchema for StrategyRef {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Strategy::name().into(), Strategy::schema()));
        Strategy::schemas(schemas);
    }
}

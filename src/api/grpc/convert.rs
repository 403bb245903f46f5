//! prost messages <-> core types. JSON values travel as JSON text.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::pb;
use crate::core::access::Caller;
use crate::core::approvals::model::{
    ChangeOperation, ChangeRequest, ChangeRequestStatus, Proposal, Subject,
};
use crate::core::drift::{ConfigDrift, DriftSummary};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::{ConfigId, Environment, FlagKey};
use crate::core::model::{
    AuditRecord, ConfigDocument, ConfigSummary, ConfigVersion, Metadata, SchemaVersion,
};
use crate::core::ports::ChangeRequestQuery;
use crate::core::service::{DriftReport, EffectiveConfig, ValidationReport, Written};

pub fn config_id(raw: &str) -> Result<ConfigId> {
    ConfigId::parse(raw)
}

pub fn environment(raw: &str) -> Result<Option<Environment>> {
    (!raw.is_empty())
        .then(|| Environment::parse(raw))
        .transpose()
}

/// Parses a JSON text field; empty means `default`.
pub fn json_field<T: DeserializeOwned>(text: &str, field: &str, default: Option<T>) -> Result<T> {
    if text.trim().is_empty()
        && let Some(default) = default
    {
        return Ok(default);
    }
    crate::api::http::extract::parse_json(text.as_bytes()).map_err(|error| match error {
        Error::InvalidInput {
            field: pointer,
            message,
        } => Error::invalid(
            if pointer == "/" {
                field.to_owned()
            } else {
                format!("{field}{pointer}")
            },
            message,
        ),
        other => other,
    })
}

pub fn document(doc: Option<pb::ConfigDocument>) -> Result<ConfigDocument> {
    let doc = doc.ok_or_else(|| Error::invalid("document", "document is required"))?;
    Ok(ConfigDocument {
        config: json_field(&doc.config_json, "document.configJson", None)?,
        overrides: json_field(
            &doc.overrides_json,
            "document.overridesJson",
            Some(Default::default()),
        )?,
        canary: json_field(&doc.canary_json, "document.canaryJson", Some(None))?,
        ab_test: json_field(&doc.ab_test_json, "document.abTestJson", Some(None))?,
    })
}

pub fn schema(text: &str) -> Result<Value> {
    json_field(text, "schemaJson", None)
}

pub fn metadata(metadata: Option<pb::Metadata>) -> Result<Metadata> {
    let metadata = metadata.ok_or_else(|| Error::invalid("metadata", "metadata is required"))?;
    Ok(Metadata {
        actor: metadata.actor,
        message: metadata.message,
        ..Default::default()
    })
}

/// The metadata of a delete or an action, which may come without any (REST's without a
/// body): the caller's own then (`Caller::metadata_or_own`); stamped.
pub fn metadata_or_own(caller: &Caller, metadata: Option<pb::Metadata>) -> Result<Metadata> {
    let given = metadata.map(|m| self::metadata(Some(m))).transpose()?;
    Ok(caller.metadata_or_own(given))
}

pub fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn optional_json<T: serde::Serialize>(value: &Option<T>) -> String {
    value.as_ref().map(json_text).unwrap_or_default()
}

pub fn pb_document(doc: &ConfigDocument) -> pb::ConfigDocument {
    pb::ConfigDocument {
        config_json: json_text(&doc.config),
        overrides_json: if doc.overrides.is_empty() {
            String::new()
        } else {
            json_text(&doc.overrides)
        },
        canary_json: optional_json(&doc.canary),
        ab_test_json: optional_json(&doc.ab_test),
    }
}

pub fn pb_metadata(metadata: &Metadata) -> pb::Metadata {
    pb::Metadata {
        actor: metadata.actor.clone(),
        message: metadata.message.clone(),
    }
}

pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn pb_version(version: &ConfigVersion) -> pb::ConfigVersion {
    pb::ConfigVersion {
        config_id: version.id.to_string(),
        version: version.version,
        document: Some(pb_document(&version.document)),
        metadata: Some(pb_metadata(&version.metadata)),
        checksum: version.checksum.clone(),
        created_at: time(version.created_at),
        rollback_of: version.rollback_of,
    }
}

pub fn pb_config_summary(summary: &ConfigSummary) -> pb::ConfigSummary {
    pb::ConfigSummary {
        config_id: summary.config_id.to_string(),
        version: summary.version,
        checksum: summary.checksum.clone(),
        updated_at: time(summary.updated_at),
    }
}

pub fn pb_created(version: &ConfigVersion) -> pb::VersionCreated {
    pb::VersionCreated {
        config_id: version.id.to_string(),
        version: version.version,
        checksum: version.checksum.clone(),
        created_at: time(version.created_at),
        rollback_of: version.rollback_of,
        change_request_id: String::new(),
    }
}

pub fn pb_schema(schema: &SchemaVersion) -> pb::SchemaVersion {
    pb::SchemaVersion {
        config_id: schema.config_id.to_string(),
        version: schema.version,
        schema_json: json_text(&schema.schema),
        checksum: schema.checksum.clone(),
        metadata: Some(pb_metadata(&schema.metadata)),
        created_at: time(schema.created_at),
    }
}

pub fn pb_report(report: &ValidationReport) -> pb::ValidationReport {
    pb::ValidationReport {
        valid: report.valid,
        schema_version: report.schema_version.unwrap_or(0),
        violations: report
            .violations
            .iter()
            .map(|v| pb::Violation {
                pointer: v.pointer.clone(),
                message: v.message.clone(),
                scope: v.scope.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn pb_effective(effective: &EffectiveConfig) -> pb::EffectiveConfig {
    let json = match &effective.resolved {
        Some(resolved) => json_text(resolved),
        None => effective.view.json.get().to_owned(),
    };
    pb::EffectiveConfig {
        config_id: effective.config_id().to_string(),
        version: effective.version(),
        environment: effective
            .environment
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        effective_config_json: json,
        checksum: effective.view.checksum.clone(),
        assignment: Some(pb::Assignment {
            canary: effective.view.assignment.canary,
            variant: effective
                .view
                .assignment
                .variant
                .clone()
                .unwrap_or_default(),
        }),
        stale: effective.stale,
    }
}

pub fn pb_audit(record: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        id: record.id,
        revision: record.revision,
        at: time(record.at),
        actor: record.actor.clone(),
        action: record.action.clone(),
        config_id: subject(kind::is_flag(&record.action), &record.config_id, false),
        flag_key: subject(kind::is_flag(&record.action), &record.config_id, true),
        version: record.version.unwrap_or(0),
        environments: record.environments.clone(),
        message: record.message.clone().unwrap_or_default(),
    }
}

fn pb_summary(summary: &DriftSummary) -> pb::DriftSummary {
    pb::DriftSummary {
        in_sync: summary.in_sync as u64,
        drifted: summary.drifted as u64,
        stale: summary.stale as u64,
    }
}

pub fn pb_drift(drift: &ConfigDrift) -> pb::ConfigDrift {
    pb::ConfigDrift {
        config_id: drift.config_id.clone(),
        version: drift.version,
        summary: Some(pb_summary(&drift.summary)),
        instances: drift
            .instances
            .iter()
            .map(|i| pb::InstanceDrift {
                instance_id: i.instance_id.clone(),
                environment: i.environment.clone(),
                version: i.version,
                checksum: i.checksum.clone(),
                reported_at: time(i.reported_at),
                status: i.status.as_str().to_owned(),
                expected_checksum: i.expected_checksum.clone(),
            })
            .collect(),
    }
}

pub fn pb_drift_report(report: &DriftReport) -> pb::DriftReport {
    pb::DriftReport {
        summary: Some(pb_summary(&report.summary)),
        configs: report.configs.iter().map(pb_drift).collect(),
    }
}

pub fn pb_change(event: &ChangeEvent) -> pb::ChangeEvent {
    pb::ChangeEvent {
        revision: event.revision,
        kind: event.kind.as_str().to_owned(),
        config_id: subject(event.is_flag(), &event.config_id, false),
        flag_key: subject(event.is_flag(), &event.config_id, true),
        version: event.version,
        checksum: event.checksum.clone(),
        actor: event.actor.clone(),
        message: event.message.clone().unwrap_or_default(),
        at: time(event.at),
        environments: event.environments.clone(),
        previous_version: event.details.previous_version,
        changes_json: event
            .details
            .changes
            .as_ref()
            .map(|patch| patch.text().to_owned())
            .unwrap_or_default(),
        changes_elided: event.details.changes_elided,
        affected_instances_count: event
            .details
            .affected_instances
            .as_ref()
            .map_or(0, |a| a.count),
        affected_instances: event
            .details
            .affected_instances
            .as_ref()
            .map(|a| a.instances.clone())
            .unwrap_or_default(),
    }
}

/// A write's answer: the version, or the change request it became.
pub fn pb_written(written: &Written<ConfigVersion>) -> pb::VersionCreated {
    match written {
        Written::Done(version) => pb_created(version),
        Written::Pending(request) => pb::VersionCreated {
            config_id: request.subject.as_str().to_owned(),
            change_request_id: request.id.clone(),
            ..Default::default()
        },
    }
}

/// A list filter; an empty `status` means pending (as over REST), `all` every status.
pub fn change_request_query(request: pb::ListChangeRequestsRequest) -> Result<ChangeRequestQuery> {
    let status = match request.status.as_str() {
        "" => Some(ChangeRequestStatus::Pending),
        text => ChangeRequestStatus::filter(text)?,
    };
    Ok(ChangeRequestQuery {
        status,
        environment: environment(&request.environment)?.map(|env| env.to_string()),
        subject: match (request.config_id.is_empty(), request.flag_key.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Subject::Config(ConfigId::parse(&request.config_id)?)),
            (true, false) => Some(Subject::Flag(FlagKey::parse(&request.flag_key)?)),
            (false, false) => {
                return Err(Error::invalid(
                    "flagKey",
                    "name a config (configId) or a flag (flagKey), not both",
                ));
            }
        },
        limit: limit(request.limit)?,
        prefixes: Vec::new(),
    })
}

pub fn pb_change_request(request: &ChangeRequest) -> pb::ChangeRequest {
    use pb::change_operation::Operation;
    let operation = match &request.operation {
        ChangeOperation::Put { document } => match &**document {
            Proposal::Config(document) => Operation::Put(pb_document(document)),
            // A definition is plain JSON (string keys only): it always serializes.
            Proposal::Flag(definition) => Operation::PutFlagDefinitionJson(
                serde_json::to_string(definition).unwrap_or_default(),
            ),
        },
        ChangeOperation::Rollback { target_version } => {
            Operation::RollbackTargetVersion(*target_version)
        }
        ChangeOperation::Delete => Operation::Delete(pb::DeleteChange {}),
        ChangeOperation::Deploy(deploy) => {
            Operation::DeployJson(serde_json::to_string(deploy).unwrap_or_default())
        }
    };
    pb::ChangeRequest {
        id: request.id.clone(),
        config_id: match &request.subject {
            Subject::Config(id) => id.to_string(),
            Subject::Flag(_) => String::new(),
        },
        flag_key: match &request.subject {
            Subject::Flag(key) => key.to_string(),
            Subject::Config(_) => String::new(),
        },
        operation: Some(pb::ChangeOperation {
            operation: Some(operation),
        }),
        base_version: request.base_version,
        environments: request.environments.clone(),
        required_approvals: request.required_approvals,
        approvals: request
            .approvals
            .iter()
            .map(|approval| pb::Approval {
                actor: approval.actor.clone(),
                at: time(approval.at),
            })
            .collect(),
        status: request.status.as_str().to_owned(),
        requested_by: request.requested_by.clone(),
        on_behalf_of: request.on_behalf_of.clone(),
        message: request.message.clone(),
        reason: request.reason.clone(),
        applied_version: request.applied_version,
        created_at: time(request.created_at),
        updated_at: time(request.updated_at),
    }
}

/// The subject id in the field for its kind (`config_id` or `flag_key`), empty in the other.
fn subject(is_flag: bool, id: &str, flag_field: bool) -> String {
    if is_flag == flag_field {
        id.to_owned()
    } else {
        String::new()
    }
}

/// 0 (unset in proto3) means the default.
pub fn limit(limit: u32) -> Result<u32> {
    crate::core::service::page_limit((limit != 0).then_some(limit))
}

/// proto3 has no "unset" for scalars: 0 stands for it (cursors, optional versions).
pub fn nonzero(value: u64) -> Option<u64> {
    (value > 0).then_some(value)
}

//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so an acknowledged write
//! survives a crash. One writer connection serialises writes; readers use their own pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{change_event, to_i64, to_u64};
use crate::core::access::model::{ApiToken, Denial};
use crate::core::approvals::model::{ChangeRequest, ChangeRequestStatus};
use crate::core::error::{Error, Result};
use crate::core::events::{ChangeEvent, kind};
use crate::core::flags::{FlagDefinition, FlagHead, FlagVersion, NewFlagVersion};
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::{
    AppliedState, AuditDraft, AuditRecord, ConfigDocument, ConfigHead, ConfigVersion, Metadata,
    SchemaVersion,
};
use crate::core::ports::{
    AccessStore, AppliedRequest, AppliedStore, AuditQuery, ChangeLog, ChangeRequestQuery,
    ChangeRequestStore, ChangeRequestWrite, Committed, ConfigStore, Database, DeleteWrite,
    FlagDeleteWrite, FlagStore, FlagWrite, HeadRow, SchemaWrite, Store, TOKEN_CHANGE_VERSION,
    TokenRevoke, TokenWrite, VersionWrite, request_changed, request_exists, request_not_approved,
    token_already_revoked, token_exists,
};

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

fn db_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::store_unavailable(error)
        }
        other => Error::internal(format!("sqlite: {other}")),
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::internal(format!("stored timestamp {text:?}: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored JSON: {e}")))
}

/// Who made a stored version (of a config, flag or schema) and why.
fn metadata_from_row(row: &SqliteRow) -> Result<Metadata> {
    Ok(Metadata {
        actor: row.try_get("actor").map_err(db_error)?,
        message: row.try_get("message").map_err(db_error)?,
        ..Default::default()
    })
}

fn version_from_row(row: &SqliteRow) -> Result<ConfigVersion> {
    let config_id: String = row.try_get("config_id").map_err(db_error)?;
    let document: String = row.try_get("document").map_err(db_error)?;
    let created_at: String = row.try_get("created_at").map_err(db_error)?;
    let rollback_of: Option<i64> = row.try_get("rollback_of").map_err(db_error)?;
    Ok(crate::core::model::NewVersion {
        config_id: ConfigId::parse(&config_id)?,
        document: parse_json::<ConfigDocument>(&document)?,
        metadata: metadata_from_row(row)?,
        checksum: row.try_get("checksum").map_err(db_error)?,
        created_at: parse_time(&created_at)?,
        rollback_of: rollback_of.map(to_u64),
    }
    .numbered(to_u64(row.try_get("version").map_err(db_error)?)))
}

fn flag_version_from_row(row: &SqliteRow) -> Result<FlagVersion> {
    let key: String = row.try_get("flag_key").map_err(db_error)?;
    let definition: String = row.try_get("definition").map_err(db_error)?;
    let created_at: String = row.try_get("created_at").map_err(db_error)?;
    let rollback_of: Option<i64> = row.try_get("rollback_of").map_err(db_error)?;
    Ok(NewFlagVersion {
        key: FlagKey::parse(&key)?,
        definition: parse_json::<FlagDefinition>(&definition)?,
        metadata: metadata_from_row(row)?,
        checksum: row.try_get("checksum").map_err(db_error)?,
        created_at: parse_time(&created_at)?,
        rollback_of: rollback_of.map(to_u64),
    }
    .numbered(to_u64(row.try_get("version").map_err(db_error)?)))
}

fn flag_head_from_row(row: &SqliteRow) -> Result<FlagHead> {
    Ok(FlagHead {
        deleted: row.try_get::<i64, _>("deleted").map_err(db_error)? != 0,
        latest: Arc::new(flag_version_from_row(row)?),
    })
}

const FLAG_HEAD_QUERY: &str =
    "SELECT v.flag_key, v.version, v.definition, v.checksum, v.actor, v.message, v.created_at,
            v.rollback_of, f.deleted
     FROM flags f JOIN flag_versions v ON v.flag_key = f.flag_key AND v.version = f.latest_version";

const FLAG_VERSION_COLUMNS: &str =
    "flag_key, version, definition, checksum, actor, message, created_at, rollback_of";

fn parse_optional_time(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_time).transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn token_from_row(row: &SqliteRow) -> Result<ApiToken> {
    let roles: String = row.try_get("roles").map_err(db_error)?;
    let scopes: String = row.try_get("scopes").map_err(db_error)?;
    let created_at: String = row.try_get("created_at").map_err(db_error)?;
    Ok(ApiToken {
        id: row.try_get("id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        roles: parse_json(&roles)?,
        scopes: parse_json(&scopes)?,
        hash: row.try_get("hash").map_err(db_error)?,
        created_at: parse_time(&created_at)?,
        created_by: row.try_get("created_by").map_err(db_error)?,
        expires_at: parse_optional_time(row.try_get("expires_at").map_err(db_error)?)?,
        revoked_at: parse_optional_time(row.try_get("revoked_at").map_err(db_error)?)?,
    })
}

fn denial_from_row(row: &SqliteRow) -> Result<Denial> {
    let at: String = row.try_get("at").map_err(db_error)?;
    Ok(Denial {
        id: to_u64(row.try_get("id").map_err(db_error)?),
        at: parse_time(&at)?,
        actor: row.try_get("actor").map_err(db_error)?,
        operation: row.try_get("operation").map_err(db_error)?,
        resource: row.try_get("resource").map_err(db_error)?,
        reason: row.try_get("reason").map_err(db_error)?,
    })
}

const CHANGE_REQUEST_COLUMNS: &str = "id, config_id, operation, base_version, environments,
        required_approvals, approvals, status, requested_by, on_behalf_of, message, reason,
        applied_version, created_at, updated_at";

fn change_request_from_row(row: &SqliteRow) -> Result<ChangeRequest> {
    let config_id: String = row.try_get("config_id").map_err(db_error)?;
    let operation: String = row.try_get("operation").map_err(db_error)?;
    let environments: String = row.try_get("environments").map_err(db_error)?;
    let approvals: String = row.try_get("approvals").map_err(db_error)?;
    let status: String = row.try_get("status").map_err(db_error)?;
    let created_at: String = row.try_get("created_at").map_err(db_error)?;
    let updated_at: String = row.try_get("updated_at").map_err(db_error)?;
    let required_approvals: i64 = row.try_get("required_approvals").map_err(db_error)?;
    let applied_version: Option<i64> = row.try_get("applied_version").map_err(db_error)?;
    Ok(ChangeRequest {
        id: row.try_get("id").map_err(db_error)?,
        config_id: ConfigId::parse(&config_id)?,
        operation: parse_json(&operation)?,
        base_version: to_u64(row.try_get("base_version").map_err(db_error)?),
        environments: parse_json(&environments)?,
        required_approvals: u32::try_from(required_approvals).unwrap_or(u32::MAX),
        approvals: parse_json(&approvals)?,
        status: ChangeRequestStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("stored change request status {status:?}")))?,
        requested_by: row.try_get("requested_by").map_err(db_error)?,
        on_behalf_of: row.try_get("on_behalf_of").map_err(db_error)?,
        message: row.try_get("message").map_err(db_error)?,
        reason: row.try_get("reason").map_err(db_error)?,
        applied_version: applied_version.map(to_u64),
        created_at: parse_time(&created_at)?,
        updated_at: parse_time(&updated_at)?,
    })
}

fn change_from_row(row: &SqliteRow) -> Result<ChangeEvent> {
    let at: String = row.try_get("at").map_err(db_error)?;
    Ok(ChangeEvent {
        revision: to_u64(row.try_get("revision").map_err(db_error)?),
        kind: row.try_get("kind").map_err(db_error)?,
        config_id: row.try_get("config_id").map_err(db_error)?,
        version: to_u64(row.try_get("version").map_err(db_error)?),
        checksum: row.try_get("checksum").map_err(db_error)?,
        actor: row.try_get("actor").map_err(db_error)?,
        message: row.try_get("message").map_err(db_error)?,
        at: parse_time(&at)?,
    })
}

impl SqliteStore {
    /// Opens (creating the file and its directory if absent) and migrates the database.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("databaseUrl", format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
            && dir != Path::new("")
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable {
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| Error::internal(format!("sqlite migration: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Ok(SqliteStore { reader, writer })
    }

    pub fn shared(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

async fn head_row(tx: &mut Transaction<'_, Sqlite>, id: &ConfigId) -> Result<HeadRow> {
    let row = sqlx::query(
        "SELECT latest_version, deleted, schema_version FROM configs WHERE config_id = ?",
    )
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(match row {
        Some(row) => HeadRow {
            latest: to_u64(row.get("latest_version")),
            deleted: row.get::<i64, _>("deleted") != 0,
            schema: to_u64(row.get("schema_version")),
        },
        None => HeadRow::default(),
    })
}

async fn flag_head_row(tx: &mut Transaction<'_, Sqlite>, key: &FlagKey) -> Result<HeadRow> {
    let row = sqlx::query("SELECT latest_version, deleted FROM flags WHERE flag_key = ?")
        .bind(key.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(match row {
        Some(row) => HeadRow {
            latest: to_u64(row.get("latest_version")),
            deleted: row.get::<i64, _>("deleted") != 0,
            schema: 0,
        },
        None => HeadRow::default(),
    })
}

/// Records a change of `subject` (a config id, or a flag key for `flag.*` kinds) and its audit.
async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    kind: &str,
    subject: &str,
    version: u64,
    checksum: &str,
    audit: &AuditDraft,
    at: DateTime<Utc>,
) -> Result<ChangeEvent> {
    let revision: i64 = sqlx::query_scalar(
        "INSERT INTO changes (kind, config_id, version, checksum, actor, message, at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING revision",
    )
    .bind(kind)
    .bind(subject)
    .bind(to_i64(version))
    .bind(checksum)
    .bind(&audit.actor)
    .bind(&audit.message)
    .bind(timestamp(at))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "INSERT INTO audit
           (revision, at, actor, action, config_id, version, environments, message, on_behalf_of)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(revision)
    .bind(timestamp(at))
    .bind(&audit.actor)
    .bind(audit.action)
    .bind(subject)
    .bind(to_i64(version))
    .bind(serde_json::to_string(&audit.environments).map_err(Error::internal)?)
    .bind(&audit.message)
    .bind(&audit.on_behalf_of)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(change_event(
        to_u64(revision),
        kind,
        subject,
        version,
        checksum,
        audit,
        at,
    ))
}

/// Marks the change request a write applies as applied as `version`, if it is still approved
/// (else nothing may be written). Runs before the write's own rows; `record_applied` follows them.
async fn claim_request(
    tx: &mut Transaction<'_, Sqlite>,
    applies: Option<&AppliedRequest>,
    version: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let Some(applies) = applies else {
        return Ok(());
    };
    let done = sqlx::query(
        "UPDATE change_requests SET status = 'applied', applied_version = ?, updated_at = ?
         WHERE id = ? AND status = 'approved'",
    )
    .bind(to_i64(version))
    .bind(timestamp(at))
    .bind(&applies.id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(request_not_approved(&applies.id));
    }
    Ok(())
}

/// Records the `change_request.applied` change of a claimed request (the revision after the
/// write's own).
async fn record_applied(
    tx: &mut Transaction<'_, Sqlite>,
    applies: Option<&AppliedRequest>,
    subject: &str,
    version: u64,
    checksum: &str,
    at: DateTime<Utc>,
) -> Result<Option<ChangeEvent>> {
    let Some(applies) = applies else {
        return Ok(None);
    };
    let event = record_change(
        tx,
        kind::CHANGE_REQUEST_APPLIED,
        subject,
        version,
        checksum,
        &applies.audit,
        at,
    )
    .await?;
    Ok(Some(event))
}

#[async_trait]
impl ConfigStore for SqliteStore {
    async fn head(&self, id: &ConfigId) -> Result<Option<ConfigHead>> {
        let row = sqlx::query(
            "SELECT v.config_id, v.version, v.document, v.checksum, v.actor, v.message,
                    v.created_at, v.rollback_of, c.deleted
             FROM configs c JOIN config_versions v
               ON v.config_id = c.config_id AND v.version = c.latest_version
             WHERE c.config_id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            Ok(ConfigHead {
                deleted: row.get::<i64, _>("deleted") != 0,
                latest: Arc::new(version_from_row(&row)?),
            })
        })
        .transpose()
    }

    async fn heads(&self) -> Result<Vec<ConfigHead>> {
        let rows = sqlx::query(
            "SELECT v.config_id, v.version, v.document, v.checksum, v.actor, v.message,
                    v.created_at, v.rollback_of, c.deleted
             FROM configs c JOIN config_versions v
               ON v.config_id = c.config_id AND v.version = c.latest_version
             ORDER BY c.config_id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(ConfigHead {
                    deleted: row.get::<i64, _>("deleted") != 0,
                    latest: Arc::new(version_from_row(row)?),
                })
            })
            .collect()
    }

    async fn version(&self, id: &ConfigId, version: u64) -> Result<Option<ConfigVersion>> {
        let row = sqlx::query(
            "SELECT config_id, version, document, checksum, actor, message, created_at, rollback_of
             FROM config_versions WHERE config_id = ? AND version = ?",
        )
        .bind(id.as_str())
        .bind(to_i64(version))
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn versions(
        &self,
        id: &ConfigId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ConfigVersion>> {
        let rows = sqlx::query(
            "SELECT config_id, version, document, checksum, actor, message, created_at, rollback_of
             FROM config_versions WHERE config_id = ? AND version < ?
             ORDER BY version DESC LIMIT ?",
        )
        .bind(id.as_str())
        .bind(before.map_or(i64::MAX, to_i64))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(version_from_row).collect()
    }

    async fn append_version(&self, write: VersionWrite) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let id = write.version.config_id.clone();
        let number = head_row(&mut tx, &id).await?.check_version_write(&write)?;
        let v = &write.version;
        claim_request(&mut tx, write.applies.as_ref(), number, v.created_at).await?;
        sqlx::query(
            "INSERT INTO configs (config_id, latest_version, deleted) VALUES (?, ?, 0)
             ON CONFLICT (config_id) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0",
        )
        .bind(id.as_str())
        .bind(to_i64(number))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO config_versions
               (config_id, version, document, checksum, actor, message, created_at, rollback_of)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(to_i64(number))
        .bind(serde_json::to_string(&v.document).map_err(Error::internal)?)
        .bind(&v.checksum)
        .bind(&v.metadata.actor)
        .bind(&v.metadata.message)
        .bind(timestamp(v.created_at))
        .bind(v.rollback_of.map(to_i64))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::CONFIG_UPDATED,
            id.as_str(),
            number,
            &v.checksum,
            &write.audit,
            v.created_at,
        )
        .await?;
        let follow_up = record_applied(
            &mut tx,
            write.applies.as_ref(),
            id.as_str(),
            number,
            &v.checksum,
            v.created_at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: number,
            event,
            follow_up,
        })
    }

    async fn delete_config(&self, write: DeleteWrite) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let id = write.config_id.clone();
        let latest = head_row(&mut tx, &id).await?.check_delete(&write)?;
        claim_request(&mut tx, write.applies.as_ref(), latest, write.at).await?;
        let checksum: String = sqlx::query_scalar(
            "SELECT checksum FROM config_versions WHERE config_id = ? AND version = ?",
        )
        .bind(id.as_str())
        .bind(to_i64(latest))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("UPDATE configs SET deleted = 1 WHERE config_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::CONFIG_DELETED,
            id.as_str(),
            latest,
            &checksum,
            &write.audit,
            write.at,
        )
        .await?;
        let follow_up = record_applied(
            &mut tx,
            write.applies.as_ref(),
            id.as_str(),
            latest,
            &checksum,
            write.at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: latest,
            event,
            follow_up,
        })
    }

    async fn schema(&self, id: &ConfigId) -> Result<Option<SchemaVersion>> {
        let row = sqlx::query(
            "SELECT config_id, version, schema, checksum, actor, message, created_at
             FROM schemas WHERE config_id = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            let created_at: String = row.get("created_at");
            let schema: String = row.get("schema");
            Ok(SchemaVersion {
                config_id: ConfigId::parse(row.get("config_id"))?,
                version: to_u64(row.get("version")),
                schema: parse_json(&schema)?,
                checksum: row.get("checksum"),
                metadata: metadata_from_row(&row)?,
                created_at: parse_time(&created_at)?,
            })
        })
        .transpose()
    }

    async fn put_schema(&self, write: SchemaWrite) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let id = write.config_id.clone();
        let number = head_row(&mut tx, &id).await?.check_schema_write(&write)?;
        sqlx::query(
            "INSERT INTO configs (config_id, latest_version, schema_version) VALUES (?, 0, ?)
             ON CONFLICT (config_id) DO UPDATE SET schema_version = excluded.schema_version",
        )
        .bind(id.as_str())
        .bind(to_i64(number))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO schemas (config_id, version, schema, checksum, actor, message, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(to_i64(number))
        .bind(serde_json::to_string(&write.schema).map_err(Error::internal)?)
        .bind(&write.checksum)
        .bind(&write.metadata.actor)
        .bind(&write.metadata.message)
        .bind(timestamp(write.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::SCHEMA_UPDATED,
            id.as_str(),
            number,
            &write.checksum,
            &write.audit,
            write.created_at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: number,
            event,
            follow_up: None,
        })
    }
}

#[async_trait]
impl FlagStore for SqliteStore {
    async fn flag_heads(&self) -> Result<Vec<FlagHead>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FLAG_HEAD_QUERY} ORDER BY f.flag_key"
        )))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(flag_head_from_row).collect()
    }

    async fn flag_head(&self, key: &FlagKey) -> Result<Option<FlagHead>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FLAG_HEAD_QUERY} WHERE f.flag_key = ?"
        )))
        .bind(key.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(flag_head_from_row).transpose()
    }

    async fn flag_version(&self, key: &FlagKey, version: u64) -> Result<Option<FlagVersion>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FLAG_VERSION_COLUMNS} FROM flag_versions WHERE flag_key = ? AND version = ?"
        )))
        .bind(key.as_str())
        .bind(to_i64(version))
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(flag_version_from_row).transpose()
    }

    async fn flag_versions(
        &self,
        key: &FlagKey,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<FlagVersion>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FLAG_VERSION_COLUMNS} FROM flag_versions WHERE flag_key = ? AND version < ?
             ORDER BY version DESC LIMIT ?"
        )))
        .bind(key.as_str())
        .bind(before.map_or(i64::MAX, to_i64))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(flag_version_from_row).collect()
    }

    async fn append_flag_version(&self, write: FlagWrite) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let key = write.version.key.clone();
        let number = flag_head_row(&mut tx, &key)
            .await?
            .check_flag_write(&write)?;
        sqlx::query(
            "INSERT INTO flags (flag_key, latest_version, deleted) VALUES (?, ?, 0)
             ON CONFLICT (flag_key) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0",
        )
        .bind(key.as_str())
        .bind(to_i64(number))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let v = &write.version;
        sqlx::query(
            "INSERT INTO flag_versions
               (flag_key, version, definition, checksum, actor, message, created_at, rollback_of)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.as_str())
        .bind(to_i64(number))
        .bind(serde_json::to_string(&v.definition).map_err(Error::internal)?)
        .bind(&v.checksum)
        .bind(&v.metadata.actor)
        .bind(&v.metadata.message)
        .bind(timestamp(v.created_at))
        .bind(v.rollback_of.map(to_i64))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::FLAG_UPDATED,
            key.as_str(),
            number,
            &v.checksum,
            &write.audit,
            v.created_at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: number,
            event,
            follow_up: None,
        })
    }

    async fn delete_flag(&self, write: FlagDeleteWrite) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let key = write.key.clone();
        let latest = flag_head_row(&mut tx, &key)
            .await?
            .check_flag_delete(&write)?;
        let checksum: String = sqlx::query_scalar(
            "SELECT checksum FROM flag_versions WHERE flag_key = ? AND version = ?",
        )
        .bind(key.as_str())
        .bind(to_i64(latest))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("UPDATE flags SET deleted = 1 WHERE flag_key = ?")
            .bind(key.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::FLAG_DELETED,
            key.as_str(),
            latest,
            &checksum,
            &write.audit,
            write.at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: latest,
            event,
            follow_up: None,
        })
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed> {
        let token = &write.token;
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let inserted = sqlx::query(
            "INSERT INTO api_tokens
               (id, name, roles, scopes, hash, created_at, created_by, expires_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(to_json(&token.roles)?)
        .bind(to_json(&token.scopes)?)
        .bind(&token.hash)
        .bind(timestamp(token.created_at))
        .bind(&token.created_by)
        .bind(token.expires_at.map(timestamp))
        .bind(token.revoked_at.map(timestamp))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(token_exists(&token.id));
        }
        let event = record_change(
            &mut tx,
            kind::TOKEN_CREATED,
            &token.id,
            TOKEN_CHANGE_VERSION,
            "",
            &write.audit,
            token.created_at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: TOKEN_CHANGE_VERSION,
            event,
            follow_up: None,
        })
    }

    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        let revoked_at: Option<Option<String>> =
            sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = ?")
                .bind(&write.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        match revoked_at {
            None => return Err(Error::not_found("token", write.id.as_str())),
            Some(Some(_)) => return Err(token_already_revoked(&write.id)),
            Some(None) => {}
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ?")
            .bind(timestamp(write.at))
            .bind(&write.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let event = record_change(
            &mut tx,
            kind::TOKEN_REVOKED,
            &write.id,
            TOKEN_CHANGE_VERSION,
            "",
            &write.audit,
            write.at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: TOKEN_CHANGE_VERSION,
            event,
            follow_up: None,
        })
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, roles, scopes, hash, created_at, created_by, expires_at, revoked_at
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn record_denial(&self, denial: Denial) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_denials (at, actor, operation, resource, reason)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(timestamp(denial.at))
        .bind(&denial.actor)
        .bind(&denial.operation)
        .bind(&denial.resource)
        .bind(&denial.reason)
        .execute(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, operation, resource, reason
             FROM access_denials WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before.map_or(i64::MAX, to_i64))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(denial_from_row).collect()
    }
}

#[async_trait]
impl ChangeRequestStore for SqliteStore {
    async fn put_change_request(&self, write: ChangeRequestWrite) -> Result<Committed> {
        let request = &write.request;
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        match write.expected {
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO change_requests
                       (id, config_id, operation, base_version, environments, required_approvals,
                        approvals, status, requested_by, on_behalf_of, message, reason,
                        applied_version, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&request.id)
                .bind(request.config_id.as_str())
                .bind(to_json(&request.operation)?)
                .bind(to_i64(request.base_version))
                .bind(to_json(&request.environments)?)
                .bind(i64::from(request.required_approvals))
                .bind(to_json(&request.approvals)?)
                .bind(request.status.as_str())
                .bind(&request.requested_by)
                .bind(&request.on_behalf_of)
                .bind(&request.message)
                .bind(&request.reason)
                .bind(request.applied_version.map(to_i64))
                .bind(timestamp(request.created_at))
                .bind(timestamp(request.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if inserted.rows_affected() == 0 {
                    return Err(request_exists(&request.id));
                }
            }
            Some((status, approvals)) => {
                // What a request was asked for never changes; only its progress does.
                let updated = sqlx::query(
                    "UPDATE change_requests
                     SET status = ?, approvals = ?, reason = ?, applied_version = ?, updated_at = ?
                     WHERE id = ? AND status = ? AND json_array_length(approvals) = ?",
                )
                .bind(request.status.as_str())
                .bind(to_json(&request.approvals)?)
                .bind(&request.reason)
                .bind(request.applied_version.map(to_i64))
                .bind(timestamp(request.updated_at))
                .bind(&request.id)
                .bind(status.as_str())
                .bind(i64::try_from(approvals).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if updated.rows_affected() == 0 {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT 1 FROM change_requests WHERE id = ?")
                            .bind(&request.id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    return Err(match exists {
                        Some(_) => request_changed(&request.id),
                        None => Error::not_found("change request", request.id.as_str()),
                    });
                }
            }
        }
        let event = record_change(
            &mut tx,
            write.kind,
            request.config_id.as_str(),
            request.base_version,
            "",
            &write.audit,
            request.updated_at,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Committed {
            version: request.base_version,
            event,
            follow_up: None,
        })
    }

    async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_REQUEST_COLUMNS} FROM change_requests WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(change_request_from_row).transpose()
    }

    async fn change_requests(&self, query: ChangeRequestQuery) -> Result<Vec<ChangeRequest>> {
        let status = query.status.map(ChangeRequestStatus::as_str);
        let config_id = query.config_id.as_ref().map(ConfigId::as_str);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_REQUEST_COLUMNS} FROM change_requests
             WHERE (? IS NULL OR status = ?) AND (? IS NULL OR config_id = ?)
               AND (? IS NULL OR EXISTS (
                 SELECT 1 FROM json_each(change_requests.environments) e WHERE e.value = ?))
             ORDER BY created_at DESC, id DESC LIMIT ?"
        )))
        .bind(status)
        .bind(status)
        .bind(config_id)
        .bind(config_id)
        .bind(&query.environment)
        .bind(&query.environment)
        .bind(i64::from(query.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(change_request_from_row).collect()
    }
}

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>> {
        // A config and a flag may share an id: the action tells their records apart.
        let subject_id = query.subject.as_ref().map(|s| s.id());
        let subject_is_flag = query.subject.as_ref().map(|s| s.is_flag());
        // Token ids may look like config ids: their records belong to neither.
        let rows = sqlx::query(
            "SELECT id, revision, at, actor, action, config_id, version, environments, message,
                    on_behalf_of
             FROM audit WHERE id < ? AND (? IS NULL OR config_id = ?)
               AND (? IS NULL OR (action LIKE 'flag.%') = ?)
               AND (? IS NULL OR action NOT LIKE 'token.%')
             ORDER BY id DESC LIMIT ?",
        )
        .bind(query.before.map_or(i64::MAX, to_i64))
        .bind(subject_id)
        .bind(subject_id)
        .bind(subject_is_flag)
        .bind(subject_is_flag)
        .bind(subject_id)
        .bind(i64::from(query.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let at: String = row.get("at");
                let environments: String = row.get("environments");
                Ok(AuditRecord {
                    id: to_u64(row.get("id")),
                    revision: to_u64(row.get("revision")),
                    at: parse_time(&at)?,
                    actor: row.get("actor"),
                    action: row.get("action"),
                    config_id: row.get("config_id"),
                    version: row.get::<Option<i64>, _>("version").map(to_u64),
                    environments: parse_json(&environments)?,
                    message: row.get("message"),
                    on_behalf_of: row.get("on_behalf_of"),
                })
            })
            .collect()
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<ChangeEvent>> {
        let rows = sqlx::query(
            "SELECT revision, kind, config_id, version, checksum, actor, message, at
             FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(to_i64(revision))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(change_from_row).collect()
    }

    async fn latest_revision(&self) -> Result<u64> {
        let revision: Option<i64> = sqlx::query_scalar("SELECT MAX(revision) FROM changes")
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(revision.map_or(0, to_u64))
    }
}

#[async_trait]
impl AppliedStore for SqliteStore {
    async fn record_applied(&self, state: AppliedState) -> Result<()> {
        sqlx::query(
            "INSERT INTO applied_states
               (config_id, environment, instance_id, version, checksum, reported_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (config_id, environment, instance_id) DO UPDATE SET
               version = excluded.version, checksum = excluded.checksum,
               reported_at = excluded.reported_at",
        )
        .bind(state.config_id.as_str())
        .bind(&state.environment)
        .bind(&state.instance_id)
        .bind(to_i64(state.version))
        .bind(&state.checksum)
        .bind(timestamp(state.reported_at))
        .execute(&self.writer)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(db) if db.is_foreign_key_violation() => {
                Error::not_found("config", state.config_id.as_str())
            }
            _ => db_error(e),
        })?;
        Ok(())
    }

    async fn applied(&self, id: Option<&ConfigId>) -> Result<Vec<AppliedState>> {
        let rows = sqlx::query(
            "SELECT config_id, environment, instance_id, version, checksum, reported_at
             FROM applied_states WHERE (? IS NULL OR config_id = ?)
             ORDER BY config_id, environment, instance_id",
        )
        .bind(id.map(ConfigId::as_str))
        .bind(id.map(ConfigId::as_str))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let reported_at: String = row.get("reported_at");
                Ok(AppliedState {
                    config_id: ConfigId::parse(row.get("config_id"))?,
                    environment: row.get("environment"),
                    instance_id: row.get("instance_id"),
                    version: to_u64(row.get("version")),
                    checksum: row.get("checksum"),
                    reported_at: parse_time(&reported_at)?,
                })
            })
            .collect()
    }

    async fn sweep_applied(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM applied_states WHERE reported_at < ?")
            .bind(timestamp(before))
            .execute(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> Result<()> {
        // Any failure to answer means not ready, never an internal error.
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(Error::store_unavailable)?;
        Ok(())
    }
}

//! The commit recipe, written once for every write of every aggregate: begin → check the
//! write's expectations on its head row and write its rows (the aggregate's `Operation`) →
//! claim the change request it applies → record its change and audit record with the next
//! revision → record the follow-up (`change_request.applied`) → commit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;

use super::rows::{timestamp, to_json};
use super::{SqliteStore, db_error};
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, ChangeKind, kind};
use crate::core::model::AuditDraft;
use crate::core::ports::{AppliedRequest, Committed, request_not_approved};
use crate::store::{change_event, to_i64, to_u64};

/// What a write changed, for the change log and the audit.
pub(super) struct Change<'a> {
    pub kind: ChangeKind,
    /// The config id, flag key or token id the change is about.
    pub subject: &'a str,
    /// The version the write made (or, for a delete, removed).
    pub version: u64,
    pub checksum: String,
    pub audit: &'a AuditDraft,
    pub at: DateTime<Utc>,
    /// The approved change request this write applies.
    pub applies: Option<&'a AppliedRequest>,
}

/// One write of an aggregate: its own part of the recipe.
#[async_trait]
pub(super) trait Operation: Send + Sync + 'static {
    /// Checks the write's expectations against its rows as the transaction sees them and writes
    /// them; says what changed. On error the recipe undoes whatever it wrote.
    async fn apply<'a>(&'a self, tx: &mut SqliteConnection) -> Result<Change<'a>>;
}

impl SqliteStore {
    /// Commits one write through the recipe, on the single writer connection.
    pub(super) async fn commit(&self, write: impl Operation) -> Result<Committed> {
        let mut tx = self.writer.begin().await.map_err(db_error)?;
        // Dropping the transaction on error rolls back whatever the write did.
        let committed = stage(&mut tx, &write).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(committed)
    }
}

/// One write's part of the transaction: its rows, the request it applies, its change and audit
/// record, the follow-up.
async fn stage(tx: &mut SqliteConnection, write: &dyn Operation) -> Result<Committed> {
    let change = write.apply(tx).await?;
    if let Some(applies) = change.applies {
        claim_request(tx, applies, change.version, change.at).await?;
    }
    let event = record_change(tx, &change, change.kind, change.audit).await?;
    let follow_up = match change.applies {
        Some(applies) => {
            let applied = kind::CHANGE_REQUEST_APPLIED;
            Some(record_change(tx, &change, applied, &applies.audit).await?)
        }
        None => None,
    };
    Ok(Committed {
        version: change.version,
        event,
        follow_up,
    })
}

/// Marks the change request a write applies as applied as `version`, if it is still approved
/// (else nothing may be written).
async fn claim_request(
    tx: &mut SqliteConnection,
    applies: &AppliedRequest,
    version: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let done = sqlx::query(include_str!("queries/change_request_claim.sql"))
        .bind(to_i64(version))
        .bind(timestamp(at))
        .bind(&applies.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(request_not_approved(&applies.id));
    }
    Ok(())
}

/// Records `kind` about `change`'s subject with the next revision, and its audit record.
async fn record_change(
    tx: &mut SqliteConnection,
    change: &Change<'_>,
    kind: ChangeKind,
    audit: &AuditDraft,
) -> Result<ChangeEvent> {
    let at = timestamp(change.at);
    let revision: i64 = sqlx::query_scalar(include_str!("queries/change_insert.sql"))
        .bind(kind.as_str())
        .bind(change.subject)
        .bind(to_i64(change.version))
        .bind(&change.checksum)
        .bind(&audit.actor)
        .bind(&audit.message)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query(include_str!("queries/audit_insert.sql"))
        .bind(revision)
        .bind(&at)
        .bind(&audit.actor)
        .bind(audit.action)
        .bind(change.subject)
        .bind(to_i64(change.version))
        .bind(to_json(&audit.environments)?)
        .bind(&audit.message)
        .bind(&audit.on_behalf_of)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(change_event(
        to_u64(revision),
        kind,
        change.subject,
        change.version,
        &change.checksum,
        audit,
        change.at,
    ))
}

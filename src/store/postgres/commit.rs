//! The commit recipe, written once for every write of every aggregate: take the write lock →
//! check the write's expectations on its head row and write its rows (the aggregate's
//! `Operation`) → claim the change request it applies → stage its change and audit record, the
//! follow-up (`change_request.applied`) and its announcements → record every staged change of the
//! transaction with the next revisions, in one statement → notify → commit.
//! A batch of writes (see `committer`) runs the same recipe in one transaction: first without
//! savepoints (one round trip per write saved), consecutive writes that can share a statement
//! in one (`Operation::shares`), and if any write fails, once more with each write alone inside
//! its own savepoint.

use std::any::Any;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Postgres, Transaction};

use super::{CHANGES_CHANNEL, PostgresStore, db_error, rows::to_json};
use crate::core::error::{Error, Result};
use crate::core::events::kind;
use crate::core::ports::{AppliedRequest, Committed, Record, request_not_approved};
use crate::store::{to_i64, to_u64};

pub(super) use crate::store::change::Change;

/// One write of an aggregate: its own part of the recipe.
#[async_trait]
pub(super) trait Operation: Any + Send + Sync {
    /// Checks the write's expectations against its rows as the transaction sees them (under the
    /// write lock) and writes them; says what changed. On error the recipe undoes whatever it
    /// wrote.
    async fn apply<'a>(&'a self, tx: &mut PgConnection) -> Result<Change<'a>>;

    /// Whether this write can share one statement with other writes (see `apply_run`): the
    /// kind of write, and its subject, which differs between the writes that share one.
    fn shares(&self) -> Option<(&'static str, &str)> {
        None
    }

    /// Applies `run`, consecutive writes of a batch of this write's kind (see `shares`), each
    /// about a different subject, this one first, in as few statements as it can: one result
    /// per write, in order, as `apply` would give. `Err` when a statement failed: then the
    /// transaction is abandoned. Only a batch that is abandoned whole if any write fails calls
    /// it.
    async fn apply_run<'a>(
        &'a self,
        tx: &mut PgConnection,
        run: &[&'a dyn Operation],
    ) -> Result<Vec<Result<Change<'a>>>> {
        let mut changes = Vec::with_capacity(run.len());
        for write in run {
            changes.push(write.apply(tx).await);
        }
        Ok(changes)
    }

    /// Changes recorded after this one in the same transaction (see `VersionWrite::announce`).
    fn announce(&self) -> &[Record] {
        &[]
    }

    /// Whether `apply` reads the change log: then the changes staged before it are recorded
    /// first.
    fn reads_change_log(&self) -> bool {
        false
    }
}

impl PostgresStore {
    /// Commits one write through the recipe, together with whatever other writes are queued
    /// when the committer gets to it.
    pub(super) async fn commit(&self, write: impl Operation) -> Result<Committed> {
        self.committer.commit(Box::new(write)).await
    }
}

/// Commits `writes` in one transaction: each write keeps its own expectations and result (a
/// failed write is rolled back, the others go on), revisions are numbered consecutively in the
/// order given. `Err` when the transaction itself fails: then nothing of any write was committed.
pub(super) async fn commit_batch(
    connection: &mut PgConnection,
    writes: &[&dyn Operation],
) -> Result<Vec<Result<Committed>>> {
    if writes.len() > 1 {
        // Usually every write's expectations hold: then savepoints are round trips for nothing.
        // A write may fail after writing some of its rows, so a failure anywhere undoes the
        // whole attempt and the batch is committed again with each write isolated.
        if let Some(results) = attempt_whole(connection, writes).await? {
            return Ok(results);
        }
    }
    attempt_isolated(connection, writes).await
}

/// Begins a transaction holding the write lock, in one round trip.
async fn lock(connection: &mut PgConnection) -> Result<Transaction<'_, Postgres>> {
    connection
        .begin_with(include_str!("queries/begin_write.sql"))
        .await
        .map_err(db_error)
}

/// Runs `writes` through the recipe in one transaction without savepoints, each run of writes
/// that share statements (`shared_run`) together, and commits them all; or, when any write
/// fails, nothing at all (`None`).
async fn attempt_whole(
    connection: &mut PgConnection,
    writes: &[&dyn Operation],
) -> Result<Option<Vec<Result<Committed>>>> {
    let mut tx = lock(connection).await?;
    let mut changes = Changes::default();
    let mut staged = Vec::with_capacity(writes.len());
    let mut rest = writes;
    while !rest.is_empty() {
        let (run, after) = rest.split_at(shared_run(rest));
        rest = after;
        if run[0].reads_change_log() {
            changes.record(&mut tx, Announce::No).await?;
        }
        match stage_run(&mut tx, run, &mut changes).await {
            Ok(run) => staged.extend(run),
            Err(_) => {
                tx.rollback().await.map_err(db_error)?;
                return Ok(None);
            }
        }
    }
    changes.record(&mut tx, Announce::Newest).await?;
    commit(tx, changes.newest()).await?;
    Ok(Some(
        staged.iter().map(|s| Ok(changes.committed(s))).collect(),
    ))
}

/// How many writes from the first one share statements with it: the consecutive writes of its
/// kind (`Operation::shares`), each about a different subject; 1 when it shares none.
fn shared_run(writes: &[&dyn Operation]) -> usize {
    let Some((kind, _)) = writes[0].shares() else {
        return 1;
    };
    let mut subjects = Vec::with_capacity(writes.len());
    writes
        .iter()
        .take_while(|write| match write.shares() {
            Some((other, subject)) if other == kind && !subjects.contains(&subject) => {
                subjects.push(subject);
                true
            }
            _ => false,
        })
        .count()
}

/// Applies and stages a run of writes (one write, or several that share statements).
async fn stage_run<'a>(
    tx: &mut PgConnection,
    run: &[&'a dyn Operation],
    changes: &mut Changes<'a>,
) -> Result<Vec<Staged>> {
    let applied = run[0].apply_run(tx, run).await?;
    let mut staged = Vec::with_capacity(run.len());
    for (write, change) in run.iter().zip(applied) {
        staged.push(stage(tx, *write, change?, changes).await?);
    }
    Ok(staged)
}

/// Runs `writes` through the recipe in one transaction, each write alone and, when there are
/// several, inside its own savepoint: a failed write is rolled back to it and the others go
/// on. Commits what succeeded.
async fn attempt_isolated(
    connection: &mut PgConnection,
    writes: &[&dyn Operation],
) -> Result<Vec<Result<Committed>>> {
    let mut tx = lock(connection).await?;
    // A write alone needs no savepoint: if it fails, the transaction is rolled back.
    let mut savepoint = (writes.len() > 1).then_some(Savepoint::None);
    let mut changes = Changes::default();
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        if write.reads_change_log() {
            changes.record(&mut tx, Announce::No).await?;
            // Rows written after a clean savepoint: the next write needs a new one.
            savepoint = savepoint.map(Savepoint::written);
        }
        if let Some(state) = savepoint {
            savepoint = Some(state.enter(&mut tx).await?);
        }
        let result = match write.apply(&mut tx).await {
            Ok(change) => stage(&mut tx, *write, change, &mut changes).await,
            Err(error) => Err(error),
        };
        match &result {
            Ok(_) => savepoint = savepoint.map(Savepoint::written),
            Err(_) => {
                if savepoint.is_some() {
                    savepoint = Some(Savepoint::rollback(&mut tx).await?);
                }
            }
        }
        results.push(result);
    }
    changes.record(&mut tx, Announce::Newest).await?;
    commit(tx, changes.newest()).await?;
    Ok(results
        .into_iter()
        .map(|result| result.map(|s| changes.committed(&s)))
        .collect())
}

/// Commits what `newest` says was recorded (and announced); with no revision (every write
/// failed its checks) there is nothing to commit.
async fn commit(tx: Transaction<'_, Postgres>, newest: Option<u64>) -> Result<()> {
    match newest {
        Some(_) => tx.commit().await.map_err(commit_failed),
        None => tx.rollback().await.map_err(db_error),
    }
}

/// A COMMIT that failed. An error the database answers while the session goes on (a deferred
/// check, a serialization failure) means nothing was committed. A connection lost while the
/// COMMIT was in flight, or ended by the database (`08…`, `57P…`: the backend terminated, for
/// example while it waited for a synchronous standby after committing locally), leaves the
/// outcome unknown: the writers are told so rather than that nothing changed, so that a client
/// reads the write back before sending it again.
fn commit_failed(error: sqlx::Error) -> Error {
    let session_went_on = match &error {
        sqlx::Error::Database(db) => !db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    };
    if session_went_on {
        return db_error(error);
    }
    tracing::warn!(%error, "the connection failed while a commit was in flight");
    Error::Unavailable {
        reason: COMMIT_OUTCOME_UNKNOWN.into(),
    }
}

/// What the writers of a batch whose COMMIT lost its connection are told.
const COMMIT_OUTCOME_UNKNOWN: &str = "the connection to the database failed while the \
    write was being committed: it may have been committed; read it back before retrying";

/// Whether a `Changes::record` announces the transaction's newest revision to the other
/// replicas (a notification, delivered on commit): the last one of a transaction does.
#[derive(Clone, Copy, PartialEq)]
enum Announce {
    No,
    Newest,
}

/// The savepoint isolating each write of a batch from the others.
#[derive(Clone, Copy)]
enum Savepoint {
    /// None taken yet.
    None,
    /// Taken, and nothing written since (a failed write was rolled back to it).
    Clean,
    /// Taken, and a write succeeded after it.
    Used,
}

impl Savepoint {
    /// The state once rows were written after it.
    fn written(self) -> Savepoint {
        match self {
            Savepoint::None => Savepoint::None,
            Savepoint::Clean | Savepoint::Used => Savepoint::Used,
        }
    }

    /// Makes sure a clean savepoint precedes the next write (one round trip at most).
    async fn enter(self, tx: &mut PgConnection) -> Result<Savepoint> {
        let statement = match self {
            Savepoint::None => "SAVEPOINT write",
            Savepoint::Used => "RELEASE SAVEPOINT write; SAVEPOINT write",
            Savepoint::Clean => return Ok(Savepoint::Clean),
        };
        sqlx::raw_sql(statement)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Savepoint::Clean)
    }

    async fn rollback(tx: &mut PgConnection) -> Result<Savepoint> {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT write")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Ok(Savepoint::Clean)
    }
}

/// A write staged in the transaction: its version and where its changes are in `Changes`.
struct Staged {
    version: u64,
    /// Its change's index; the follow-up and the announcements come right after it.
    first: usize,
    follow_up: bool,
    announced: usize,
}

/// The rest of one write's part of the transaction once its rows are written (`change`): the
/// request it applies; its change and audit record, the follow-up and its announcements are
/// staged in `changes`. On error nothing of it is staged.
async fn stage<'a>(
    tx: &mut PgConnection,
    write: &'a dyn Operation,
    change: Change<'a>,
    changes: &mut Changes<'a>,
) -> Result<Staged> {
    if let Some(applies) = change.applies {
        claim_request(tx, applies, change.version, change.at).await?;
    }
    let first = changes.staged.len();
    let version = change.version;
    let follow_up = change.applies.map(|applies| Change {
        kind: kind::CHANGE_REQUEST_APPLIED,
        checksum: change.checksum.clone(),
        audit: &applies.audit,
        ..change
    });
    changes.staged.push(change);
    let follow_up = match follow_up {
        Some(change) => {
            changes.staged.push(change);
            true
        }
        None => false,
    };
    let announced = write.announce();
    changes.staged.extend(announced.iter().map(Change::from));
    Ok(Staged {
        version,
        first,
        follow_up,
        announced: announced.len(),
    })
}

/// Marks the change request a write applies as applied as `version`, if it is still approved
/// (else nothing may be written).
async fn claim_request(
    tx: &mut PgConnection,
    applies: &AppliedRequest,
    version: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let done = sqlx::query(include_str!("queries/change_request_claim.sql"))
        .bind(to_i64(version))
        .bind(at)
        .bind(&applies.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(request_not_approved(&applies.id));
    }
    Ok(())
}

/// The changes of a transaction's writes, each recorded with the next revision (and its audit
/// record) in one statement per `record`.
#[derive(Default)]
struct Changes<'a> {
    staged: Vec<Change<'a>>,
    /// The revision of each recorded change, in `staged` order.
    revisions: Vec<u64>,
}

impl<'a> Changes<'a> {
    /// Records the changes staged since the last call, numbering them consecutively; with
    /// `Announce::Newest`, announces the newest revision recorded in the transaction (in the
    /// same statement when there are changes to record).
    async fn record(&mut self, tx: &mut PgConnection, announce: Announce) -> Result<()> {
        let new = &self.staged[self.revisions.len()..];
        if new.is_empty() {
            if let (Announce::Newest, Some(newest)) = (announce, self.newest()) {
                sqlx::query(include_str!("queries/notify.sql"))
                    .bind(CHANGES_CHANNEL)
                    .bind(newest.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            return Ok(());
        }
        let mut columns = Columns::with_capacity(new.len());
        for change in new {
            columns.push(change)?;
        }
        let latest: i64 = sqlx::query_scalar(include_str!("queries/changes_insert.sql"))
            .bind(columns.kinds)
            .bind(columns.subjects)
            .bind(columns.versions)
            .bind(columns.checksums)
            .bind(columns.actors)
            .bind(columns.messages)
            .bind(columns.at)
            .bind(columns.actions)
            .bind(columns.environments)
            .bind(columns.on_behalf_of)
            .bind(columns.details)
            .bind((announce == Announce::Newest).then_some(CHANGES_CHANNEL))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let latest = to_u64(latest);
        self.revisions
            .extend((1..=new.len() as u64).map(|offset| latest + offset));
        Ok(())
    }

    /// The newest revision recorded, if any.
    fn newest(&self) -> Option<u64> {
        self.revisions.last().copied()
    }

    /// What `write` committed, once its changes are recorded.
    fn committed(&self, write: &Staged) -> Committed {
        let event = |index: usize| {
            let change = &self.staged[index];
            let mut event = change.event(self.revisions[index], change.kind, change.audit);
            event.at = stored_at(event.at);
            event
        };
        let announced_from = write.first + 1 + usize::from(write.follow_up);
        Committed {
            version: write.version,
            event: event(write.first),
            follow_up: write.follow_up.then(|| event(write.first + 1)),
            announced: (announced_from..announced_from + write.announced)
                .map(event)
                .collect(),
        }
    }
}

/// A change's time as PostgreSQL stores it (microseconds), so that the events a batch answers
/// and keeps for the follower (`committed_here`) are the change log's rows exactly.
fn stored_at(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The columns of `changes_insert.sql`, one array each.
struct Columns<'c> {
    kinds: Vec<&'static str>,
    subjects: Vec<&'c str>,
    versions: Vec<i64>,
    checksums: Vec<&'c str>,
    actors: Vec<&'c str>,
    messages: Vec<Option<&'c str>>,
    at: Vec<DateTime<Utc>>,
    actions: Vec<&'static str>,
    environments: Vec<String>,
    on_behalf_of: Vec<Option<&'c str>>,
    details: Vec<String>,
}

impl<'c> Columns<'c> {
    fn with_capacity(n: usize) -> Self {
        Columns {
            kinds: Vec::with_capacity(n),
            subjects: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            checksums: Vec::with_capacity(n),
            actors: Vec::with_capacity(n),
            messages: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            actions: Vec::with_capacity(n),
            environments: Vec::with_capacity(n),
            on_behalf_of: Vec::with_capacity(n),
            details: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, change: &'c Change<'_>) -> Result<()> {
        let audit = change.audit;
        self.kinds.push(change.kind.as_str());
        self.subjects.push(change.subject);
        self.versions.push(to_i64(change.version));
        self.checksums.push(&change.checksum);
        self.actors.push(&audit.actor);
        self.messages.push(audit.message.as_deref());
        self.at.push(stored_at(change.at));
        self.actions.push(audit.action);
        self.environments.push(to_json(&audit.environments)?);
        self.on_behalf_of.push(audit.on_behalf_of.as_deref());
        self.details.push(to_json(&audit.details)?);
        Ok(())
    }
}

//! `apply -f DIR`: make the server match a directory of configs and flags. It reads what is
//! live, prints the plan (a diff per change), and writes each change against the version it saw
//! (`expectedVersion`), so a concurrent edit is a conflict, not an overwrite.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

mod show;

pub use show::describe;
use show::{render, report, summary};

use super::bundle::{Bundle, ConfigEntry};
use super::client::{Failure, Result};
use super::output::{self, Format};
use super::remote::{self, Outcome};
use super::{Common, Context, metadata};
use crate::core::approvals::model::{ChangeOperation, ChangeRequest, Proposal, Subject};
use crate::core::flags::FlagDefinition;

#[derive(Debug, Args)]
pub struct Apply {
    #[command(flatten)]
    pub common: Common,
    /// The directory: `configs/<id>.yaml` and `flags/<key>.yaml` (docs/cli.md).
    #[arg(short = 'f', long = "file", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the configs (flags) the server has and the directory does not, for each kind
    /// whose folder the directory has.
    #[arg(long)]
    pub prune: bool,
    /// Recorded with every change (default: "summit-config apply DIR").
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Schema,
    Config,
    Flag,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::Config => "config",
            Kind::Flag => "flag",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One difference between the directory and the server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub action: Action,
    /// The live version the change is written against (0: there is none).
    pub base_version: u64,
    #[serde(skip)]
    pub before: Value,
    #[serde(skip)]
    pub after: Value,
    /// A pending change request that already proposes exactly this change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<String>,
}

/// The plan: the changes, and how many declared items already match.
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

pub async fn apply(ctx: &Context, args: Apply) -> Result<()> {
    let bundle = Bundle::read(&args.dir)?;
    let plan = plan(ctx, &bundle, args.prune).await?;
    let dir = args.dir.display().to_string();
    let table = ctx.format == Format::Table;
    if table {
        output::emit(&render(&plan, &dir));
    }
    if args.dry_run || plan.changes.iter().all(|c| c.awaiting.is_some()) {
        if !table {
            output::show(ctx.format, &report(&plan, &[], args.dry_run), |_| {
                String::new()
            })?;
        }
        return Ok(());
    }
    let message = args
        .message
        .unwrap_or_else(|| format!("summit-config apply {dir}"));
    let meta = metadata(Some(&message));
    let outcomes = execute(ctx, &bundle, &plan, &meta, table).await;
    if table {
        output::emit(&summary(&outcomes));
    } else {
        output::show(ctx.format, &report(&plan, &outcomes, false), |_| {
            String::new()
        })?;
    }
    match outcomes.into_iter().find_map(|(_, outcome)| outcome.err()) {
        Some(failure) => Err(Failure::Quiet(failure.exit_code())),
        None => Ok(()),
    }
}

/// Reads what is live and compares it with the directory.
pub async fn plan(ctx: &Context, bundle: &Bundle, prune: bool) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut unchanged = 0;
    if let Some(configs) = &bundle.configs {
        // Both maps have the declared ids, in the same (sorted) order.
        let live = remote::configs(&ctx.client, configs).await?;
        for ((id, entry), (_, current)) in configs.iter().zip(live) {
            let before = changes.len();
            compare_config(id, entry, current, &mut changes);
            if changes.len() == before {
                unchanged += 1;
            }
        }
        if prune {
            for (id, version) in remote::config_ids(&ctx.client).await? {
                if !configs.contains_key(&id) {
                    changes.push(deletion(Kind::Config, id, version));
                }
            }
        }
    }
    if let Some(flags) = &bundle.flags {
        let live = remote::flags(&ctx.client).await?;
        for (key, definition) in flags {
            match live.get(key) {
                Some((_, current)) if current == definition => unchanged += 1,
                current => changes.push(Change {
                    kind: Kind::Flag,
                    id: key.clone(),
                    action: if current.is_some() {
                        Action::Update
                    } else {
                        Action::Create
                    },
                    base_version: current.map_or(0, |(version, _)| *version),
                    before: current.map_or(Value::Null, |(_, d)| to_value(d)),
                    after: to_value(definition),
                    awaiting: None,
                }),
            }
        }
        if prune {
            for (key, (version, _)) in live {
                if !flags.contains_key(&key) {
                    changes.push(deletion(Kind::Flag, key, version));
                }
            }
        }
    }
    // Applying again must not ask twice: a change a pending request already proposes waits.
    let subjects: Vec<(Kind, &str)> = changes
        .iter()
        .filter(|c| c.kind != Kind::Schema)
        .map(|c| (c.kind, c.id.as_str()))
        .collect();
    let requests = remote::pending_requests(&ctx.client, &subjects).await?;
    for change in &mut changes {
        change.awaiting = awaiting(&requests, change);
    }
    Ok(Plan { changes, unchanged })
}

fn compare_config(
    id: &str,
    entry: &ConfigEntry,
    live: remote::LiveConfig,
    changes: &mut Vec<Change>,
) {
    let schema = live.schema;
    let (base_version, document) = match live.current {
        Some((version, document)) => (version, Some(document)),
        None => (0, None),
    };
    // Leaving `schema` out of a file leaves the registered schema alone.
    if let Some(wanted) = &entry.schema
        && schema.as_ref() != Some(wanted)
    {
        changes.push(Change {
            kind: Kind::Schema,
            id: id.to_owned(),
            action: if schema.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            base_version: 0,
            before: schema.clone().unwrap_or(Value::Null),
            after: wanted.clone(),
            awaiting: None,
        });
    }
    if document.as_ref() != Some(&entry.document) {
        changes.push(Change {
            kind: Kind::Config,
            id: id.to_owned(),
            action: if document.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            base_version,
            before: document.as_ref().map_or(Value::Null, to_value),
            after: to_value(&entry.document),
            awaiting: None,
        });
    }
}

/// The id of a pending request that proposes exactly `change` (the same subject, against the
/// same version, the same document or a delete).
fn awaiting(requests: &[ChangeRequest], change: &Change) -> Option<String> {
    requests.iter().find_map(|request| {
        let subject = match (&request.subject, change.kind) {
            (Subject::Config(id), Kind::Config) => id.as_str(),
            (Subject::Flag(key), Kind::Flag) => key.as_str(),
            _ => return None,
        };
        let same = match (&request.operation, change.action) {
            (ChangeOperation::Delete, Action::Delete) => true,
            (ChangeOperation::Put { document }, Action::Create | Action::Update) => {
                let proposed = match &**document {
                    Proposal::Config(document) => to_value(document),
                    Proposal::Flag(definition) => to_value(definition),
                };
                proposed == change.after
            }
            _ => false,
        };
        (same && subject == change.id && request.base_version == change.base_version)
            .then(|| request.id.clone())
    })
}

fn deletion(kind: Kind, id: String, version: u64) -> Change {
    Change {
        kind,
        id,
        action: Action::Delete,
        base_version: version,
        before: Value::Null,
        after: Value::Null,
        awaiting: None,
    }
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Writes the plan: per config its schema and document (in the order that validates), then
/// flags, then deletes. Prints a progress line per change on a table.
async fn execute(
    ctx: &Context,
    bundle: &Bundle,
    plan: &Plan,
    meta: &Value,
    progress: bool,
) -> Vec<(usize, Result<Outcome>)> {
    let pending: Vec<usize> = (0..plan.changes.len())
        .filter(|&i| plan.changes[i].awaiting.is_none())
        .collect();
    let total = pending.len();
    let mut outcomes = Vec::with_capacity(total);
    let mut report = |index: usize, outcome: Result<Outcome>| {
        if progress {
            let change = &plan.changes[index];
            let line = format!(
                "[{}/{total}] {} {}: {}\n",
                outcomes.len() + 1,
                change.kind.as_str(),
                change.id,
                describe(&outcome)
            );
            output::emit(&line);
        }
        outcomes.push((index, outcome));
    };
    // Configs with their schemas, grouped by id.
    let mut by_config: BTreeMap<&str, (Option<usize>, Option<usize>)> = BTreeMap::new();
    for &i in &pending {
        let change = &plan.changes[i];
        match (change.kind, change.action) {
            (Kind::Config, Action::Create | Action::Update) => {
                by_config.entry(&change.id).or_default().0 = Some(i)
            }
            (Kind::Schema, _) => by_config.entry(&change.id).or_default().1 = Some(i),
            _ => {}
        }
    }
    let configs = bundle.configs.as_ref();
    for (id, (config, schema)) in by_config {
        let Some(entry) = configs.and_then(|c| c.get(id)) else {
            continue;
        };
        let document = config.map(|i| (&entry.document, plan.changes[i].base_version));
        let written = remote::write_config(
            &ctx.client,
            id,
            document,
            entry.schema.as_ref().filter(|_| schema.is_some()),
            meta,
        )
        .await;
        for (kind, outcome) in written {
            let index = if kind == Kind::Schema { schema } else { config };
            if let Some(index) = index {
                report(index, outcome);
            }
        }
    }
    for &i in &pending {
        let change = &plan.changes[i];
        let outcome = match (change.kind, change.action) {
            (Kind::Flag, Action::Create | Action::Update) => {
                let definition: &FlagDefinition =
                    &bundle.flags.as_ref().expect("flags were planned")[&change.id];
                remote::put_flag(
                    &ctx.client,
                    &change.id,
                    definition,
                    change.base_version,
                    meta,
                )
                .await
            }
            _ => continue,
        };
        report(i, outcome);
    }
    for &i in &pending {
        let change = &plan.changes[i];
        if change.action == Action::Delete {
            let outcome = remote::delete(
                &ctx.client,
                change.kind,
                &change.id,
                change.base_version,
                meta,
            )
            .await;
            report(i, outcome);
        }
    }
    outcomes
}

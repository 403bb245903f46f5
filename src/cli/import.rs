//! `import DIR`: load an export into a server. The manifest's checksums are verified before
//! anything is written; what already exists is refused (`--policy abort`, nothing written),
//! skipped, or overwritten with a new version. A config exported with `--history` and new here
//! gets its versions replayed in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::apply::{Kind, describe};
use super::approvals;
use super::bundle::{self, Bundle, CONFIGS, ConfigEntry, FLAGS};
use super::client::{Client, Failure, Result, segment};
use super::export::{FORMAT_VERSION, HISTORY, MANIFEST, Manifest, SECRETS, sha256_hex};
use super::output::{self, Format};
use super::remote::{self, Outcome};
use super::{Common, Context, metadata};
use crate::core::model::ConfigDocument;

#[derive(Debug, Args)]
pub struct Import {
    #[command(flatten)]
    pub common: Common,
    /// A directory `summit-config export` wrote.
    pub dir: PathBuf,
    /// What to do with a config or flag the server already has.
    #[arg(long, value_enum, default_value = "abort")]
    pub policy: Policy,
    /// Print what would happen and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Refuse the whole import, writing nothing, if anything exists.
    Abort,
    /// Leave what exists as it is.
    Skip,
    /// Write the exported document as a new version of what exists.
    Overwrite,
}

/// One item's fate.
struct Line {
    kind: Kind,
    id: String,
    result: &'static str,
    outcome: Option<Result<Outcome>>,
}

pub async fn import(ctx: &Context, args: Import) -> Result<()> {
    let manifest = verify(&args.dir)?;
    let bundle = Bundle::read(&args.dir)?;
    let client = &ctx.client;
    let configs = bundle.configs.clone().unwrap_or_default();
    let flags = bundle.flags.clone().unwrap_or_default();

    let live_configs = remote::configs(client, &configs).await?;
    let live_flags = remote::flags(client).await?;
    // What exists and differs from the export; identical items are left as they are.
    let mut existing = Vec::new();
    for (id, live) in &live_configs {
        let entry = &configs[id];
        let schema_differs = entry.schema.is_some() && live.schema != entry.schema;
        match &live.current {
            Some((version, document)) if *document != entry.document || schema_differs => {
                existing.push((
                    format!("config {id}"),
                    format!("exists (version {version})"),
                ));
            }
            // A schema outlives its config's delete: it is something here too.
            None if schema_differs && live.schema.is_some() => {
                existing.push((
                    format!("config {id}"),
                    "its schema exists (the config was deleted)".to_owned(),
                ));
            }
            _ => {}
        }
    }
    for (key, definition) in &flags {
        if let Some((version, _)) = live_flags.get(key).filter(|(_, live)| live != definition) {
            existing.push((format!("flag {key}"), format!("exists (version {version})")));
        }
    }
    if args.policy == Policy::Abort && !existing.is_empty() {
        return Err(Failure::Conflict {
            detail: format!(
                "{} item(s) exist here with other content; nothing was imported (--policy skip or overwrite)",
                existing.len()
            ),
            fields: existing,
        });
    }

    let message = args
        .message
        .clone()
        .unwrap_or_else(|| format!("summit-config import {}", args.dir.display()));
    let meta = metadata(Some(&message));
    let mut lines = Vec::new();
    for (id, entry) in &configs {
        let live = &live_configs[id];
        lines.extend(import_config(client, &args, id, entry, live, &meta).await);
    }
    for (key, definition) in &flags {
        let current = live_flags.get(key);
        let (result, base) = match current {
            None => ("created", 0),
            Some((_, live)) if live == definition => ("unchanged", 0),
            Some(_) if args.policy == Policy::Skip => ("skipped", 0),
            Some((version, _)) => ("overwritten", *version),
        };
        let outcome = if args.dry_run || matches!(result, "unchanged" | "skipped") {
            None
        } else {
            Some(remote::put_flag(client, key, definition, base, &meta).await)
        };
        lines.push(Line {
            kind: Kind::Flag,
            id: key.clone(),
            result,
            outcome,
        });
    }
    let missing = missing_secrets(client, &args.dir).await?;
    report(ctx.format, &manifest, &lines, &missing, args.dry_run)?;
    match lines
        .into_iter()
        .find_map(|line| line.outcome.and_then(Result::err))
    {
        Some(failure) => Err(Failure::Quiet(failure.exit_code())),
        None => Ok(()),
    }
}

/// A config (and its schema): created (its history replayed when exported), left, or written
/// over, by the policy.
async fn import_config(
    client: &Client,
    args: &Import,
    id: &str,
    entry: &ConfigEntry,
    live: &remote::LiveConfig,
    meta: &Value,
) -> Vec<Line> {
    let line = |kind, result, outcome| Line {
        kind,
        id: id.to_owned(),
        result,
        outcome,
    };
    let schema_changes = entry.schema.is_some() && live.schema != entry.schema;
    let (result, base) = match &live.current {
        None if schema_changes && live.schema.is_some() && args.policy == Policy::Skip => {
            return vec![line(Kind::Config, "skipped", None)];
        }
        None => ("created", 0),
        Some((_, document)) if *document == entry.document && !schema_changes => {
            return vec![line(Kind::Config, "unchanged", None)];
        }
        Some(_) if args.policy == Policy::Skip => return vec![line(Kind::Config, "skipped", None)],
        Some((version, _)) => ("overwritten", *version),
    };
    if args.dry_run {
        return vec![line(Kind::Config, result, None)];
    }
    let mut base = base;
    let mut lines = Vec::new();
    if live.current.is_none() {
        // Replay the exported history, all but the last version; the last is the document.
        for old in replayable(&args.dir, id, &entry.document) {
            let meta = replay_metadata(meta, &old);
            let document = bundle::config_document(&old).ok();
            let Some(document) = document else { continue };
            let written =
                remote::write_config(client, id, Some((&document, base)), None, &meta).await;
            match written.into_iter().next() {
                Some((_, Ok(Outcome::Written(version)))) => base = version,
                // Writes here need approval: a history cannot be replayed version by version.
                // The request the first one made is withdrawn, and the config is proposed as
                // exported, in one request.
                Some((kind, Ok(Outcome::Pending(request)))) => {
                    let reason = "import: a history is not replayed where writes need approval";
                    let body = json!({"reason": reason, "metadata": meta});
                    if let Err(failure) = approvals::act(client, &request, "cancel", &body).await {
                        lines.push(line(kind, "failed", Some(Err(failure))));
                        return lines;
                    }
                    break;
                }
                Some((kind, outcome)) => {
                    lines.push(line(kind, "failed", Some(outcome)));
                    return lines;
                }
                None => {}
            }
        }
    }
    let document_changes = live
        .current
        .as_ref()
        .is_none_or(|(_, d)| *d != entry.document);
    let document = document_changes.then_some((&entry.document, base));
    let schema = entry.schema.as_ref().filter(|_| schema_changes);
    for (kind, outcome) in remote::write_config(client, id, document, schema, meta).await {
        lines.push(line(kind, result, Some(outcome)));
    }
    lines
}

/// The exported versions before the current one, oldest first (empty without history).
fn replayable(dir: &Path, id: &str, current: &ConfigDocument) -> Vec<Value> {
    let path = dir.join(HISTORY).join(CONFIGS).join(format!("{id}.json"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut versions: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
    if versions
        .last()
        .and_then(|v| bundle::config_document(v).ok())
        .is_some_and(|last| last == *current)
    {
        versions.pop();
    }
    versions
}

/// The replayed version says what it was: its number, author, time and message.
fn replay_metadata(meta: &Value, old: &Value) -> Value {
    let mut meta = meta.clone();
    let mut message = format!(
        "imported version {} by {} at {}",
        old["version"],
        old["metadata"]["actor"].as_str().unwrap_or("?"),
        old["createdAt"].as_str().unwrap_or("?")
    );
    if let Some(original) = old["metadata"]["message"].as_str() {
        message.push_str(&format!(": {original}"));
    }
    meta["message"] = message.into();
    meta
}

/// Reads the manifest and checks every file against it: same bytes, nothing unlisted.
fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::usage(format!(
            "{}: {e} (import reads what `summit-config export` wrote)",
            path.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(Failure::usage(format!(
            "{}: format version {} (this CLI reads {FORMAT_VERSION})",
            path.display(),
            manifest.format_version
        )));
    }
    let mut problems = Vec::new();
    for (relative, sum) in &manifest.files {
        match std::fs::read(dir.join(relative)) {
            Ok(bytes) if sha256_hex(&bytes) == *sum => {}
            Ok(_) => problems.push((
                relative.clone(),
                "changed since the export (checksum differs)".to_owned(),
            )),
            Err(e) => problems.push((relative.clone(), e.to_string())),
        }
    }
    for folder in [
        CONFIGS.to_owned(),
        FLAGS.to_owned(),
        format!("{HISTORY}/{CONFIGS}"),
        format!("{HISTORY}/{FLAGS}"),
    ] {
        for relative in listed(dir, &folder) {
            if !manifest.files.contains_key(&relative) {
                problems.push((relative, "not in the manifest".to_owned()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Invalid {
            detail: format!(
                "{}: the files do not match the manifest; nothing was imported",
                dir.display()
            ),
            fields: problems,
        });
    }
    Ok(manifest)
}

/// The non-hidden files of `dir/folder`, as manifest paths.
fn listed(dir: &Path, folder: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .map(|name| format!("{folder}/{name}"))
        .collect()
}

/// `store:` references the export saw that this server's built-in store lacks.
async fn missing_secrets(client: &Client, dir: &Path) -> Result<Vec<String>> {
    let Ok(secrets) = super::read_document(&dir.join(SECRETS)) else {
        return Ok(Vec::new());
    };
    let mut missing = Vec::new();
    for reference in secrets["references"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_else(Vec::new)
    {
        let Some(name) = reference.strip_prefix("store:") else {
            continue;
        };
        let name = name.split(['#', '?']).next().unwrap_or(name);
        match remote::optional(client, &format!("/api/v1/secrets/{}", segment(name))).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(reference.clone()),
            Err(Failure::Problem {
                status: 401 | 403, ..
            }) => {}
            Err(failure) => return Err(failure),
        }
    }
    Ok(missing)
}

fn report(
    format: Format,
    manifest: &Manifest,
    lines: &[Line],
    missing: &[String],
    dry_run: bool,
) -> Result<()> {
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for line in lines {
        let mut item = json!({"kind": line.kind, "id": line.id});
        let group = match &line.outcome {
            Some(Err(failure)) => {
                item["reason"] = failure.one_line().into();
                "failed"
            }
            Some(Ok(Outcome::Pending(request))) => {
                item["changeRequest"] = request.clone().into();
                "pending"
            }
            Some(Ok(Outcome::Written(version))) => {
                item["version"] = (*version).into();
                line.result
            }
            _ => line.result,
        };
        groups.entry(group).or_default().push(item);
    }
    let mut value = json!({
        "source": manifest.source,
        "revision": manifest.revision,
        "dryRun": dry_run,
        "missingSecrets": missing,
    });
    for group in [
        "created",
        "overwritten",
        "unchanged",
        "skipped",
        "pending",
        "failed",
    ] {
        value[group] = Value::Array(groups.remove(group).unwrap_or_default());
    }
    output::show(format, &value, |v| {
        let rows = lines.iter().map(|line| {
            let detail = match &line.outcome {
                Some(outcome) => describe(outcome),
                None if dry_run => "(dry run)".to_owned(),
                None => String::new(),
            };
            let result = match &line.outcome {
                Some(Err(_)) => "failed",
                Some(Ok(Outcome::Pending(_))) => "pending",
                _ => line.result,
            };
            [
                line.kind.as_str().to_owned(),
                line.id.clone(),
                result.to_owned(),
                detail,
            ]
        });
        let mut text = output::table(["KIND", "ID", "RESULT", "DETAIL"], rows);
        let count = |group: &str| v[group].as_array().map_or(0, Vec::len);
        text.push_str(&format!(
            "{}created {}, overwritten {}, unchanged {}, skipped {}, pending {}, failed {}.\n",
            if dry_run { "Dry run: " } else { "" },
            count("created"),
            count("overwritten"),
            count("unchanged"),
            count("skipped"),
            count("pending"),
            count("failed"),
        ));
        for reference in missing {
            text.push_str(&format!(
                "warning: {reference} is referenced but this server's store has no such secret\n"
            ));
        }
        text
    })
}

//! `export DIR`: every live config (document and schema) and flag in the `apply` format, with
//! a manifest (format version, source, revision, a SHA-256 per file). Secrets appear as the
//! references configs make and the names the built-in store holds, never as values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::bundle::{self, CONFIGS, ConfigEntry, FLAGS};
use super::client::{Client, Failure, Result, segment};
use super::output;
use super::remote;
use super::{Common, Context};

pub const MANIFEST: &str = "summit-export.json";
pub const SECRETS: &str = "secrets.yaml";
pub const HISTORY: &str = "history";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Args)]
pub struct Export {
    #[command(flatten)]
    pub common: Common,
    /// The directory to write; created, and it must be empty unless `--force`.
    pub dir: PathBuf,
    /// Every version of each config and flag as well, under `history/`.
    #[arg(long)]
    pub history: bool,
    /// Write into a directory that is not empty (files of the same name are replaced).
    #[arg(long)]
    pub force: bool,
}

/// `summit-export.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    /// The server exported.
    pub source: String,
    pub server_version: Option<String>,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// The server's change-log revision when the export began; every file also names its
    /// own version.
    pub revision: Option<u64>,
    pub history: bool,
    pub counts: BTreeMap<String, usize>,
    /// Path (relative, `/`-separated) → SHA-256 of the file's bytes, hex.
    pub files: BTreeMap<String, String>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub async fn export(ctx: &Context, args: Export) -> Result<()> {
    let dir = args.dir;
    check_empty(&dir, args.force)?;
    let client = &ctx.client;
    let health = client.get("/health", &[]).await.unwrap_or(Value::Null);
    let revision = health["revision"].as_u64();
    let mut files = Files {
        dir: &dir,
        sums: BTreeMap::new(),
    };

    let ids = remote::config_ids(client).await?;
    let configs: Vec<(String, ConfigEntry)> = futures::stream::iter(ids)
        .map(|(id, _)| async move {
            let live = remote::config(client, &id, true).await?;
            let Some((_, document)) = live.current else {
                return Ok(None); // deleted since it was listed
            };
            Ok(Some((
                id,
                ConfigEntry {
                    document,
                    schema: live.schema,
                },
            )))
        })
        .buffered(8)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await?;
    let mut references: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, entry) in &configs {
        files.yaml(&format!("{CONFIGS}/{id}.yaml"), &bundle::config_file(entry))?;
        let mut found = Vec::new();
        bundle::secret_references(
            &serde_json::to_value(&entry.document).unwrap_or_default(),
            &mut found,
        );
        for reference in found {
            let users = references.entry(reference).or_default();
            if !users.contains(id) {
                users.push(id.clone());
            }
        }
        if args.history {
            let versions =
                history(client, &format!("/api/v1/configs/{}/versions", segment(id))).await?;
            files.json(
                &format!("{HISTORY}/{CONFIGS}/{id}.json"),
                &Value::Array(versions),
            )?;
        }
    }
    let flags = remote::flags(client).await?;
    for (key, (_, definition)) in &flags {
        let definition = serde_json::to_value(definition).unwrap_or_default();
        files.yaml(&format!("{FLAGS}/{key}.yaml"), &definition)?;
        if args.history {
            let path = format!("/api/v1/feature-flags/{}/versions", segment(key));
            files.json(
                &format!("{HISTORY}/{FLAGS}/{key}.json"),
                &Value::Array(history(client, &path).await?),
            )?;
        }
    }
    // Both folders even when empty: an export of a server with nothing in it imports too.
    for folder in [CONFIGS, FLAGS] {
        std::fs::create_dir_all(dir.join(folder))
            .map_err(|e| Failure::usage(format!("{}: {e}", dir.join(folder).display())))?;
    }
    let store = store_secrets(client).await?;
    let secrets = json!({
        "references": references,
        "store": store.clone().unwrap_or(Value::Null),
    });
    files.yaml(SECRETS, &secrets)?;

    let counts = BTreeMap::from([
        ("configs".to_owned(), configs.len()),
        (
            "schemas".to_owned(),
            configs.iter().filter(|(_, e)| e.schema.is_some()).count(),
        ),
        ("flags".to_owned(), flags.len()),
        ("secretReferences".to_owned(), references.len()),
    ]);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        source: ctx.client.base().to_owned(),
        server_version: health["version"].as_str().map(str::to_owned),
        exported_at: chrono::Utc::now(),
        revision,
        history: args.history,
        counts,
        files: files.sums,
    };
    let text = output::pretty_json(&serde_json::to_value(&manifest).map_err(Failure::other)?);
    bundle::write_file(&dir.join(MANIFEST), text.into_bytes())?;
    output::show(
        ctx.format,
        &serde_json::to_value(&manifest).unwrap_or_default(),
        |_| {
            let mut line = format!(
                "exported {} configs ({} schemas), {} flags and {} secret references",
                manifest.counts["configs"],
                manifest.counts["schemas"],
                manifest.counts["flags"],
                manifest.counts["secretReferences"],
            );
            if let Some(revision) = revision {
                line.push_str(&format!(" at revision {revision}"));
            }
            line.push_str(&format!(" to {}\n", dir.display()));
            if store.is_none() {
                line.push_str("note: the built-in store's secret names were not listed (the token lacks manage-secrets)\n");
            }
            line
        },
    )
}

/// Files written so far and their checksums.
struct Files<'a> {
    dir: &'a Path,
    sums: BTreeMap<String, String>,
}

impl Files<'_> {
    fn yaml(&mut self, relative: &str, value: &Value) -> Result<()> {
        let bytes = bundle::write_yaml(&self.dir.join(relative), value)?;
        self.sums.insert(relative.to_owned(), sha256_hex(&bytes));
        Ok(())
    }

    fn json(&mut self, relative: &str, value: &Value) -> Result<()> {
        let bytes = bundle::write_file(
            &self.dir.join(relative),
            output::pretty_json(value).into_bytes(),
        )?;
        self.sums.insert(relative.to_owned(), sha256_hex(&bytes));
        Ok(())
    }
}

fn check_empty(dir: &Path, force: bool) -> Result<()> {
    let usage = |e: std::io::Error| Failure::usage(format!("{}: {e}", dir.display()));
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(Failure::usage(format!(
                    "{}: not empty (use --force to write into it)",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(usage)
        }
        Err(e) => Err(usage(e)),
    }
}

/// Every version at `path` (newest first, paged), returned oldest first.
async fn history(client: &Client, path: &str) -> Result<Vec<Value>> {
    let mut versions = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        query.extend(cursor.map(|c| ("cursor", c.to_string())));
        let page = client.get(path, &query).await?;
        versions.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    versions.reverse();
    Ok(versions)
}

/// The built-in store's secrets (name, version, format: never values); `None` when the token
/// may not list them.
async fn store_secrets(client: &Client) -> Result<Option<Value>> {
    match client.get("/api/v1/secrets", &[]).await {
        Ok(list) => Ok(Some(list["items"].clone())),
        Err(Failure::Problem {
            status: 401 | 403, ..
        }) => Ok(None),
        Err(failure) => Err(failure),
    }
}

//! `secret create|rotate|list|get`. Values go in from a file or stdin (never an argument, which
//! shell history keeps) and come out only with `get --show-value`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Failure, Result, segment};
use super::configs::written;
use super::output::{self, cell, when};
use super::{Common, Context, metadata, read_text};

#[derive(Debug, Args)]
pub struct Secret {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Write a new current version (creating the secret if needed).
    Create {
        name: String,
        /// The value: a file, or `-` for stdin (one trailing newline is dropped).
        #[arg(long, default_value = "-")]
        value_file: PathBuf,
        /// The file holds a JSON object (a secret with fields) rather than a string.
        #[arg(long)]
        json: bool,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// Rotate now: the given value, or one the secret's rotation policy generates.
    Rotate {
        name: String,
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// Stage the new value as pending instead of making it current.
        #[arg(long)]
        pending: bool,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// List secrets (names and versions, no values).
    List,
    /// A secret's versions and rotation policy.
    Get {
        name: String,
        /// Also print the current value (the read is audited).
        #[arg(long)]
        show_value: bool,
    },
}

pub async fn run(ctx: &Context, command: SecretCommand) -> Result<()> {
    match command {
        SecretCommand::Create {
            name,
            value_file,
            json,
            message,
            expected_version,
        } => {
            let mut body = json!({
                "value": read_value(&value_file, json)?,
                "metadata": metadata(message.as_deref()),
            });
            if let Some(expected) = expected_version {
                body["expectedVersion"] = expected.into();
            }
            let path = format!("/api/v1/secrets/{}", segment(&name));
            let answer = ctx
                .client
                .call(Method::PUT, &path, &[], Some(&body))
                .await?;
            written(ctx, &answer.body, answer.status)
        }
        SecretCommand::Rotate {
            name,
            value_file,
            pending,
            message,
        } => {
            let mut body = json!({"metadata": metadata(message.as_deref())});
            if let Some(file) = value_file {
                body["value"] = read_value(&file, false)?;
            }
            if pending {
                body["pending"] = true.into();
            }
            let path = format!("/api/v1/secrets/{}/rotate", segment(&name));
            let answer = ctx
                .client
                .call(Method::POST, &path, &[], Some(&body))
                .await?;
            written(ctx, &answer.body, answer.status)
        }
        SecretCommand::List => {
            let secrets = ctx.client.get("/api/v1/secrets", &[]).await?;
            output::show(ctx.format, &secrets, |v| {
                let rows = output::items(v, "items").into_iter().map(|secret| {
                    [
                        cell(&secret, "name"),
                        cell(&secret, "version"),
                        cell(&secret, "format"),
                        cell(&secret, "keyId"),
                        when(&secret, "createdAt"),
                    ]
                });
                output::table(["NAME", "VERSION", "FORMAT", "KEY", "CREATED"], rows)
            })
        }
        SecretCommand::Get { name, show_value } => {
            let path = format!("/api/v1/secrets/{}", segment(&name));
            let mut secret = ctx.client.get(&path, &[]).await?;
            if show_value {
                let value = ctx.client.get(&format!("{path}/value"), &[]).await?;
                secret["value"] = value["value"].clone();
            }
            output::show(ctx.format, &secret, |v| {
                let rows = output::items(v, "versions").into_iter().map(|version| {
                    [
                        cell(&version, "version"),
                        cell(&version, "stages"),
                        cell(&version, "actor"),
                        when(&version, "createdAt"),
                        cell(&version, "message"),
                    ]
                });
                let mut text =
                    output::table(["VERSION", "STAGES", "ACTOR", "CREATED", "MESSAGE"], rows);
                if let Some(value) = v.get("value") {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    text.push_str(&format!("value: {value}\n"));
                }
                text
            })
        }
    }
}

fn read_value(path: &Path, json: bool) -> Result<Value> {
    let text = read_text(path)?;
    if json {
        return serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", path.display())));
    }
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).into())
}

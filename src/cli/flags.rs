//! `flag get|set|list|eval`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Failure, Result, segment};
use super::configs::written;
use super::output::{self, cell, short, when};
use super::{Common, Context, metadata, read_document};

#[derive(Debug, Args)]
pub struct Flag {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: FlagCommand,
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Show a flag's current definition.
    Get { key: String },
    /// Write a flag definition from a JSON or YAML file (`-` for stdin).
    Set {
        key: String,
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(long)]
        expected_version: Option<u64>,
    },
    /// List live flags.
    List {
        /// Only flags meant for this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// Evaluate a flag for a context.
    Eval {
        key: String,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// The context's targeting key (a user id).
        #[arg(long)]
        targeting_key: Option<String>,
        /// A context attribute, `name=value` (a JSON value, else a string); repeatable.
        #[arg(long = "attr", value_name = "NAME=VALUE")]
        attributes: Vec<String>,
    },
}

pub async fn run(ctx: &Context, command: FlagCommand) -> Result<()> {
    match command {
        FlagCommand::Get { key } => {
            let path = format!("/api/v1/feature-flags/{}", segment(&key));
            let flag = ctx.client.get(&path, &[]).await?;
            output::show(ctx.format, &flag, |v| {
                let mut definition = v.clone();
                if let Some(object) = definition.as_object_mut() {
                    for meta in ["key", "version", "checksum", "createdAt", "metadata"] {
                        object.remove(meta);
                    }
                }
                format!(
                    "{} version {}  {}  {}\n{}",
                    output::paint(output::BOLD, &cell(v, "key")),
                    cell(v, "version"),
                    when(v, "createdAt"),
                    short(&cell(v, "checksum")),
                    serde_yaml_ng::to_string(&definition).unwrap_or_default()
                )
            })
        }
        FlagCommand::Set {
            key,
            file,
            message,
            expected_version,
        } => {
            let mut body = read_document(&file)?;
            let Some(object) = body.as_object_mut() else {
                return Err(Failure::usage("the flag definition must be an object"));
            };
            object
                .entry("metadata")
                .or_insert_with(|| metadata(message.as_deref()));
            if let Some(expected) = expected_version {
                object.insert("expectedVersion".into(), expected.into());
            }
            let path = format!("/api/v1/feature-flags/{}", segment(&key));
            let answer = ctx
                .client
                .call(Method::PUT, &path, &[], Some(&body))
                .await?;
            written(ctx, &answer.body, answer.status)
        }
        FlagCommand::List { service } => {
            let query: Vec<_> = service.map(|s| ("service", s)).into_iter().collect();
            let flags = ctx.client.get("/api/v1/feature-flags", &query).await?;
            output::show(ctx.format, &flags, |v| {
                let rows = output::items(v, "items").into_iter().map(|flag| {
                    [
                        cell(&flag, "key"),
                        cell(&flag, "type"),
                        cell(&flag, "services"),
                        cell(&flag, "defaultVariant"),
                        cell(&flag, "version"),
                        cell(&flag, "description"),
                    ]
                });
                let header = [
                    "FLAG",
                    "TYPE",
                    "ENABLED",
                    "DEFAULT",
                    "VERSION",
                    "DESCRIPTION",
                ];
                output::table(header, rows)
            })
        }
        FlagCommand::Eval {
            key,
            env,
            service,
            targeting_key,
            attributes,
        } => {
            let mut context = Map::new();
            if let Some(targeting_key) = targeting_key {
                context.insert("targetingKey".into(), targeting_key.into());
            }
            for attribute in attributes {
                let Some((name, value)) = attribute.split_once('=') else {
                    return Err(Failure::usage(format!(
                        "--attr {attribute}: expected NAME=VALUE"
                    )));
                };
                let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
                context.insert(name.into(), value);
            }
            let mut body = json!({"flagKey": key, "context": context});
            if let Some(env) = env {
                body["environment"] = env.into();
            }
            if let Some(service) = service {
                body["service"] = service.into();
            }
            let path = "/api/v1/feature-flags/evaluate";
            let result = ctx
                .client
                .call(Method::POST, path, &[], Some(&body))
                .await?
                .body;
            output::show(ctx.format, &result, |v| {
                format!(
                    "{} = {}  (variant {}, {}, version {})\n",
                    cell(v, "flagKey"),
                    v.get("value").unwrap_or(&Value::Null),
                    cell(v, "variant"),
                    cell(v, "reason"),
                    cell(v, "version")
                )
            })
        }
    }
}

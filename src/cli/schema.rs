//! `schema register|get|validate`: a config's JSON Schema, and checking a candidate against it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Failure, Result, segment};
use super::output::{self, cell, short, when};
use super::{Common, Context, metadata, read_document};

#[derive(Debug, Args)]
pub struct Schema {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a new schema version from a JSON Schema file (JSON or YAML; `-` for stdin).
    Register {
        id: String,
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Show the latest schema.
    Get { id: String },
    /// Check a candidate document (as `set` takes it) without writing; exit 5 when it fails.
    Validate {
        id: String,
        #[arg(short, long)]
        file: PathBuf,
    },
}

pub async fn run(ctx: &Context, command: SchemaCommand) -> Result<()> {
    match command {
        SchemaCommand::Register { id, file, message } => {
            let body = json!({
                "schema": read_document(&file)?,
                "metadata": metadata(message.as_deref()),
            });
            let path = format!("/api/v1/configs/{}/schema", segment(&id));
            let schema = ctx
                .client
                .call(Method::PUT, &path, &[], Some(&body))
                .await?
                .body;
            output::show(ctx.format, &schema, |v| {
                format!(
                    "{}: schema version {} registered, checksum {}\n",
                    cell(v, "configId"),
                    cell(v, "version"),
                    short(&cell(v, "checksum"))
                )
            })
        }
        SchemaCommand::Get { id } => {
            let path = format!("/api/v1/configs/{}/schema", segment(&id));
            let schema = ctx.client.get(&path, &[]).await?;
            output::show(ctx.format, &schema, |v| {
                format!(
                    "{} schema version {}  {}  {}\n{}",
                    output::paint(output::BOLD, &cell(v, "configId")),
                    cell(v, "version"),
                    when(v, "createdAt"),
                    short(&cell(v, "checksum")),
                    serde_yaml_ng::to_string(&v["schema"]).unwrap_or_default()
                )
            })
        }
        SchemaCommand::Validate { id, file } => {
            let mut candidate = read_document(&file)?;
            if let Some(object) = candidate.as_object_mut() {
                object.remove("metadata");
                object.remove("expectedVersion");
            }
            let path = format!("/api/v1/configs/{}/schema/validate", segment(&id));
            let verdict = ctx
                .client
                .call(Method::POST, &path, &[], Some(&candidate))
                .await?
                .body;
            if verdict["valid"] == true || ctx.format != output::Format::Table {
                output::show(ctx.format, &verdict, |_| format!("{id}: valid\n"))?;
            }
            if verdict["valid"] == true {
                return Ok(());
            }
            Err(Failure::Invalid {
                detail: format!("the document is not valid for {id}"),
                fields: output::items(&verdict, "violations")
                    .iter()
                    .map(|violation| {
                        let scope = match violation.get("scope").and_then(Value::as_str) {
                            Some(scope) => format!(" ({scope})"),
                            None => String::new(),
                        };
                        (
                            cell(violation, "pointer"),
                            format!("{}{scope}", cell(violation, "message")),
                        )
                    })
                    .collect(),
            })
        }
    }
}

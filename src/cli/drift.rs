//! `drift detect <id>` and `drift report`: what instances run against what they should.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Result, segment};
use super::output::{self, cell, short, when};
use super::{Common, Context};

#[derive(Debug, Args)]
pub struct Drift {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: DriftCommand,
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// The instances of one config and whether each runs what it should.
    Detect {
        id: String,
        /// Only this environment's instances.
        #[arg(long)]
        env: Option<String>,
    },
    /// Every config with reports, with totals.
    Report,
}

pub async fn drift(ctx: &Context, args: Drift) -> Result<()> {
    match args.command {
        DriftCommand::Detect { id, env } => {
            let query: Vec<_> = env.map(|e| ("environment", e)).into_iter().collect();
            let path = format!("/api/v1/configs/{}/drift", segment(&id));
            let drift = ctx.client.get(&path, &query).await?;
            output::show(ctx.format, &drift, |v| {
                let mut text = summary(&cell(v, "configId"), v);
                text.push_str(&instances(std::slice::from_ref(v)));
                text
            })
        }
        DriftCommand::Report => {
            let drift = ctx.client.get("/api/v1/drift", &[]).await?;
            output::show(ctx.format, &drift, |v| {
                let configs = output::items(v, "configs");
                let mut text = summary("all configs", v);
                text.push_str(&instances(&configs));
                text
            })
        }
    }
}

fn summary(subject: &str, drift: &Value) -> String {
    let totals = &drift["summary"];
    format!(
        "{subject}: {} in sync, {} drifted, {} stale\n",
        cell(totals, "inSync"),
        cell(totals, "drifted"),
        cell(totals, "stale")
    )
}

fn instances(configs: &[Value]) -> String {
    let mut rows = Vec::new();
    for config in configs {
        for instance in output::items(config, "instances") {
            rows.push([
                cell(config, "configId"),
                cell(&instance, "environment"),
                cell(&instance, "instanceId"),
                cell(&instance, "version"),
                cell(&instance, "status"),
                short(&cell(&instance, "checksum")),
                short(&cell(&instance, "expectedChecksum")),
                when(&instance, "reportedAt"),
            ]);
        }
    }
    let header = [
        "CONFIG",
        "ENVIRONMENT",
        "INSTANCE",
        "VERSION",
        "STATUS",
        "CHECKSUM",
        "EXPECTED",
        "REPORTED",
    ];
    output::table(header, rows)
}

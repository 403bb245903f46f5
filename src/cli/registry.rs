//! `registry list|discover`: the service registry's services and their healthy instances.

use clap::{Args, Subcommand};

use super::client::{Result, segment};
use super::output::{self, cell, when};
use super::{Common, Context};

#[derive(Debug, Args)]
pub struct Registry {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Services with their instance counts.
    List,
    /// The healthy instances of a service.
    Discover {
        service: String,
        #[arg(long)]
        env: Option<String>,
    },
}

pub async fn run(ctx: &Context, command: RegistryCommand) -> Result<()> {
    match command {
        RegistryCommand::List => {
            let services = ctx.client.get("/api/v1/registry/services", &[]).await?;
            output::show(ctx.format, &services, |v| {
                let rows = output::items(v, "services").into_iter().map(|service| {
                    [
                        cell(&service, "serviceName"),
                        cell(&service, "instances"),
                        cell(&service, "healthy"),
                        cell(&service, "passing"),
                        cell(&service, "warning"),
                        cell(&service, "critical"),
                        cell(&service, "maintenance"),
                        cell(&service, "expired"),
                    ]
                });
                let header = [
                    "SERVICE",
                    "INSTANCES",
                    "HEALTHY",
                    "PASSING",
                    "WARNING",
                    "CRITICAL",
                    "MAINTENANCE",
                    "EXPIRED",
                ];
                output::table(header, rows)
            })
        }
        RegistryCommand::Discover { service, env } => {
            let path = format!("/api/v1/registry/discover/{}", segment(&service));
            let query: Vec<_> = env.map(|e| ("environment", e)).into_iter().collect();
            let found = ctx.client.get(&path, &query).await?;
            output::show(ctx.format, &found, |v| {
                let mut text = format!(
                    "{}: {} healthy of {}{}\n",
                    cell(v, "serviceName"),
                    cell(v, "healthy"),
                    cell(v, "total"),
                    if v["protectionActive"] == true {
                        " (protection active: all returned)"
                    } else {
                        ""
                    }
                );
                let rows = output::items(v, "instances").into_iter().map(|instance| {
                    [
                        cell(&instance, "instanceId"),
                        cell(&instance, "environment"),
                        cell(&instance, "status"),
                        cell(&instance, "serviceUrl"),
                        cell(&instance, "weight"),
                        when(&instance, "lastHeartbeat"),
                    ]
                });
                let header = [
                    "INSTANCE",
                    "ENVIRONMENT",
                    "STATUS",
                    "URL",
                    "WEIGHT",
                    "HEARTBEAT",
                ];
                text.push_str(&output::table(header, rows));
                text
            })
        }
    }
}

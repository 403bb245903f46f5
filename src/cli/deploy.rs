//! `deploy start|list|status|log|pause|resume|promote|abort|rollback`: staged deployments of a
//! config version to an environment that requires them; `status --follow` shows progress.

use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Result, segment};
use super::configs::change_request_line;
use super::output::{self, cell, when};
use super::{Common, Context, metadata};

#[derive(Debug, Args)]
pub struct Deploy {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: DeployCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Start deploying a version (202 and a change request in a protected environment).
    Start {
        id: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        version: u64,
        /// A built-in (direct, canary, linear, exponential, rolling, blue-green) or stored strategy.
        #[arg(long, default_value = "canary")]
        strategy: String,
        /// The instances to deploy to (default: those that report applying the config); repeatable.
        #[arg(long = "instance")]
        instances: Vec<String>,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Deployments, newest first.
    List {
        #[arg(long)]
        config: Option<String>,
        #[arg(long)]
        env: Option<String>,
        /// Only deployments still running.
        #[arg(long)]
        active: bool,
    },
    /// One deployment; `--follow` prints each change until it ends (with `-o json`, one
    /// object per line).
    Status {
        deployment: String,
        #[arg(long)]
        follow: bool,
    },
    /// A deployment's transitions.
    Log { deployment: String },
    /// Act on a deployment.
    #[command(flatten)]
    Act(Action),
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Hold the deployment where it is.
    Pause { deployment: String },
    /// Go on after a pause.
    Resume { deployment: String },
    /// Skip to every instance (from the final bake: complete now).
    Promote { deployment: String },
    /// Stop; everyone is served the previous version at once.
    Abort { deployment: String },
    /// After completion: release the previous version again.
    Rollback { deployment: String },
}

const ENDED: [&str; 3] = ["complete", "aborted", "rolled_back"];

pub async fn run(ctx: &Context, command: DeployCommand) -> Result<()> {
    match command {
        DeployCommand::Start {
            id,
            env,
            version,
            strategy,
            instances,
            message,
        } => {
            let mut body = json!({
                "configId": id, "environment": env, "version": version, "strategy": strategy,
                "metadata": metadata(message.as_deref()),
            });
            if !instances.is_empty() {
                body["instances"] = json!(instances);
            }
            let answer = ctx
                .client
                .call(Method::POST, "/api/v1/deployments", &[], Some(&body))
                .await?;
            output::show(ctx.format, &answer.body, |v| match answer.status {
                202 => change_request_line(v),
                _ => line(v),
            })
        }
        DeployCommand::List {
            config,
            env,
            active,
        } => {
            let mut query = Vec::new();
            query.extend(config.map(|c| ("configId", c)));
            query.extend(env.map(|e| ("environment", e)));
            if active {
                query.push(("active", "true".into()));
            }
            let deployments = ctx.client.get("/api/v1/deployments", &query).await?;
            output::show(ctx.format, &deployments, |v| {
                let rows = output::items(v, "items").into_iter().map(|d| row(&d));
                output::table(HEADER, rows)
            })
        }
        DeployCommand::Status { deployment, follow } => {
            let path = format!("/api/v1/deployments/{}", segment(&deployment));
            let mut shown = String::new();
            loop {
                let current = ctx.client.get(&path, &[]).await?;
                let now = line(&current);
                if now != shown {
                    if follow && ctx.format == output::Format::Json {
                        // JSON Lines: one compact object per change, for `jq` and scripts.
                        output::emit(&format!("{current}\n"));
                    } else {
                        output::show(ctx.format, &current, |_| now.clone())?;
                    }
                    shown = now;
                }
                let ended = ENDED.contains(&current["state"].as_str().unwrap_or(""));
                if !follow || ended {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        DeployCommand::Log { deployment } => {
            let path = format!("/api/v1/deployments/{}/log", segment(&deployment));
            let log = ctx.client.get(&path, &[]).await?;
            output::show(ctx.format, &log, |v| {
                let rows = output::items(v, "items").into_iter().map(|t| {
                    [
                        cell(&t, "seq"),
                        when(&t, "at"),
                        cell(&t, "from"),
                        cell(&t, "to"),
                        cell(&t, "step"),
                        cell(&t, "percent"),
                        cell(&t, "triggeredBy"),
                        cell(&t, "reason"),
                    ]
                });
                let header = ["SEQ", "AT", "FROM", "TO", "STEP", "PERCENT", "BY", "REASON"];
                output::table(header, rows)
            })
        }
        DeployCommand::Act(action) => {
            let (name, deployment) = match action {
                Action::Pause { deployment } => ("pause", deployment),
                Action::Resume { deployment } => ("resume", deployment),
                Action::Promote { deployment } => ("promote", deployment),
                Action::Abort { deployment } => ("abort", deployment),
                Action::Rollback { deployment } => ("rollback", deployment),
            };
            let path = format!("/api/v1/deployments/{}/{name}", segment(&deployment));
            let body = json!({"metadata": metadata(None)});
            let answer = ctx
                .client
                .call(Method::POST, &path, &[], Some(&body))
                .await?
                .body;
            output::show(ctx.format, &answer, line)
        }
    }
}

const HEADER: [&str; 8] = [
    "ID",
    "CONFIG",
    "ENVIRONMENT",
    "VERSION",
    "STATE",
    "STEP",
    "PERCENT",
    "STARTED",
];

fn row(deployment: &Value) -> [String; 8] {
    [
        cell(deployment, "id"),
        cell(deployment, "configId"),
        cell(deployment, "environment"),
        cell(deployment, "version"),
        cell(deployment, "state"),
        format!(
            "{}/{}",
            cell(deployment, "step"),
            cell(deployment, "batches")
        ),
        cell(deployment, "percent"),
        when(deployment, "createdAt"),
    ]
}

/// One line per deployment state, as `status --follow` prints it.
fn line(deployment: &Value) -> String {
    format!(
        "deployment {}: {} v{} to {}: {} step {}/{} at {}%\n",
        cell(deployment, "id"),
        cell(deployment, "configId"),
        cell(deployment, "version"),
        cell(deployment, "environment"),
        cell(deployment, "state"),
        cell(deployment, "step"),
        cell(deployment, "batches"),
        cell(deployment, "percent"),
    )
}

//! The operator CLI: REST client commands built into the server's binary
//! (`summit-config get checkout`). See docs/cli.md.

mod apply;
mod approvals;
mod bundle;
mod client;
mod configs;
mod deploy;
mod diff;
mod drift;
mod export;
mod flags;
mod import;
mod output;
mod registry;
mod remote;
mod schema;
mod secrets;
mod tokens;
mod watch;

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Subcommand};

pub use client::exit;
use client::{Client, Connection, Failure, Result};
use output::Format;

use crate::settings::Settings;

/// Options every client command takes (global, so `flag get x --server …` works too).
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "SUMMIT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Bearer token (an API token, a JWT or the admin token).
    #[arg(long, global = true, env = "SUMMIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file. Default: the server's `admin-token` file when readable.
    #[arg(long, global = true, env = "SUMMIT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust the certificates in this PEM file (a private CA) for https.
    #[arg(long, global = true, env = "SUMMIT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Output: a table for people, json or yaml for scripts.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    pub output: Format,
}

/// The client commands, flattened into the binary's top-level commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show a config's current version (or `--version N`).
    Get(configs::Get),
    /// Write a new version from a JSON or YAML file (`-` for stdin).
    Set(configs::Set),
    /// List live configs.
    List(configs::List),
    /// A config's history, newest first.
    Versions(configs::Versions),
    /// The difference between two versions of a config.
    Diff(configs::Diff),
    /// Write a new version equal to an old one.
    Rollback(configs::Rollback),
    /// The audit trail, of every config or of one.
    Audit(configs::Audit),
    /// What an instance would get: the effective config for an environment.
    Effective(configs::Effective),
    /// Drift between what instances report and what they should run.
    Drift(configs::Drift),
    /// Change requests waiting for approval.
    Pending(approvals::Pending),
    /// Approve a change request (and apply it with `--apply` once approved).
    Approve(approvals::Approve),
    /// Reject a change request.
    Reject(approvals::Reject),
    /// Withdraw a change request of one's own.
    Cancel(approvals::Cancel),
    /// Make the server match a directory of configs and flags (plan, then apply).
    Apply(apply::Apply),
    /// Write every config, schema and flag to a directory, with a manifest.
    Export(export::Export),
    /// Load a directory `export` wrote into this server.
    Import(import::Import),
    /// A config's JSON Schema: register, show, validate a candidate.
    Schema(schema::Schema),
    /// Staged deployments of a version to an environment.
    Deploy(deploy::Deploy),
    /// The service registry.
    Registry(registry::Registry),
    /// Feature flags.
    Flag(flags::Flag),
    /// Secrets of the built-in store (values are never printed unless asked for).
    Secret(secrets::Secret),
    /// API tokens.
    Token(tokens::Token),
    /// Follow change events, one line per event.
    Watch(watch::Watch),
    /// Print a shell completion script.
    Completion(Completion),
}

#[derive(Debug, Args)]
pub struct Completion {
    pub shell: clap_complete::Shell,
}

/// Runs one client command and answers the process's exit code.
pub async fn run(command: ClientCommand, settings: &Settings) -> i32 {
    match dispatch(command, settings).await {
        Ok(()) => exit::OK,
        Err(failure) => {
            output::report(&failure);
            failure.exit_code()
        }
    }
}

/// What a command needs: the client and the output format.
pub struct Context {
    pub client: Client,
    pub format: Format,
}

fn connect(common: &Common, settings: &Settings) -> Result<Context> {
    let token = client::resolve_token(
        common.token.clone(),
        common.token_file.as_deref(),
        &admin_token_file(settings),
    )?;
    let client = Client::new(Connection {
        server: common.server.clone(),
        token,
        ca_file: common.ca_file.clone(),
    })?;
    Ok(Context {
        client,
        format: common.output,
    })
}

async fn dispatch(command: ClientCommand, settings: &Settings) -> Result<()> {
    use ClientCommand as C;
    let ctx = |common: &Common| connect(common, settings);
    match command {
        C::Get(args) => configs::get(&ctx(&args.common)?, args).await,
        C::Set(args) => configs::set(&ctx(&args.common)?, args).await,
        C::List(args) => configs::list(&ctx(&args.common)?, args).await,
        C::Versions(args) => configs::versions(&ctx(&args.common)?, args).await,
        C::Diff(args) => configs::diff(&ctx(&args.common)?, args).await,
        C::Rollback(args) => configs::rollback(&ctx(&args.common)?, args).await,
        C::Audit(args) => configs::audit(&ctx(&args.common)?, args).await,
        C::Effective(args) => configs::effective(&ctx(&args.common)?, args).await,
        C::Drift(args) => configs::drift(&ctx(&args.common)?, args).await,
        C::Pending(args) => approvals::pending(&ctx(&args.common)?, args).await,
        C::Approve(args) => approvals::approve(&ctx(&args.common)?, args).await,
        C::Reject(args) => approvals::reject(&ctx(&args.common)?, args).await,
        C::Cancel(args) => approvals::cancel(&ctx(&args.common)?, args).await,
        C::Apply(args) => apply::apply(&ctx(&args.common)?, args).await,
        C::Export(args) => export::export(&ctx(&args.common)?, args).await,
        C::Import(args) => import::import(&ctx(&args.common)?, args).await,
        C::Schema(args) => schema::run(&ctx(&args.common)?, args.command).await,
        C::Deploy(args) => deploy::run(&ctx(&args.common)?, args.command).await,
        C::Registry(args) => registry::run(&ctx(&args.common)?, args.command).await,
        C::Flag(args) => flags::run(&ctx(&args.common)?, args.command).await,
        C::Secret(args) => secrets::run(&ctx(&args.common)?, args.command).await,
        C::Token(args) => tokens::run(&ctx(&args.common)?, args.command).await,
        C::Watch(args) => watch::run(&ctx(&args.common)?, args).await,
        C::Completion(args) => {
            let mut command = crate::settings::Cli::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "summit-config",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// `{data dir}/admin-token`, in the data dir the server uses (`app::data_dir`).
fn admin_token_file(settings: &Settings) -> PathBuf {
    crate::app::data_dir(settings).join("admin-token")
}

/// The text of a file, or of stdin for `-`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let read = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|e| Failure::usage(format!("reading {}: {e}", path.display())))
}

/// Reads a JSON or YAML document from a file, or stdin for `-`.
pub(crate) fn read_document(path: &Path) -> Result<serde_json::Value> {
    let text = read_text(path)?;
    serde_json::from_str(&text)
        .or_else(|_| serde_yaml_ng::from_str(&text))
        .map_err(|e| Failure::usage(format!("{}: neither JSON nor YAML: {e}", path.display())))
}

/// `metadata` for a write: the actor (the server records the token's identity and keeps this
/// as on-behalf-of) and the message.
pub(crate) fn metadata(message: Option<&str>) -> serde_json::Value {
    let actor = std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "summit-config-cli".into());
    let mut metadata = serde_json::json!({ "actor": actor });
    if let Some(message) = message {
        metadata["message"] = message.into();
    }
    metadata
}

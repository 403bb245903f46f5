//! `token create|list|revoke`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Result, segment};
use super::output::{self, cell, when};
use super::{Common, Context};

#[derive(Debug, Args)]
pub struct Token {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its text is printed once, here.
    Create {
        #[arg(long)]
        name: String,
        /// A role (config-reader, config-admin, …); repeatable.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Limit the token to config ids starting with this; repeatable.
        #[arg(long = "config-prefix")]
        config_prefixes: Vec<String>,
        /// Limit the token to this environment; repeatable.
        #[arg(long = "env")]
        environments: Vec<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List tokens (never their texts).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

pub async fn run(ctx: &Context, command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            name,
            roles,
            config_prefixes,
            environments,
            expires_at,
        } => {
            let mut body = json!({"name": name, "roles": roles});
            let mut scopes = serde_json::Map::new();
            if !config_prefixes.is_empty() {
                scopes.insert("configPrefixes".into(), json!(config_prefixes));
            }
            if !environments.is_empty() {
                scopes.insert("environments".into(), json!(environments));
            }
            if !scopes.is_empty() {
                body["scopes"] = Value::Object(scopes);
            }
            if let Some(expires_at) = expires_at {
                body["expiresAt"] = expires_at.into();
            }
            let token = ctx
                .client
                .call(Method::POST, "/api/v1/tokens", &[], Some(&body))
                .await?
                .body;
            output::show(ctx.format, &token, |v| {
                format!(
                    "token {} ({}) created; its text is shown only now:\n{}\n",
                    cell(v, "name"),
                    cell(v, "id"),
                    cell(v, "tokenText")
                )
            })
        }
        TokenCommand::List => {
            let tokens = ctx.client.get("/api/v1/tokens", &[]).await?;
            output::show(ctx.format, &tokens, |v| {
                let rows = output::items(v, "items").into_iter().map(|token| {
                    [
                        cell(&token, "id"),
                        cell(&token, "name"),
                        cell(&token, "roles"),
                        when(&token, "createdAt"),
                        when(&token, "expiresAt"),
                        when(&token, "revokedAt"),
                    ]
                });
                output::table(
                    ["ID", "NAME", "ROLES", "CREATED", "EXPIRES", "REVOKED"],
                    rows,
                )
            })
        }
        TokenCommand::Revoke { id } => {
            let path = format!("/api/v1/tokens/{}", segment(&id));
            let answer = ctx
                .client
                .call(Method::DELETE, &path, &[], None)
                .await?
                .body;
            output::show(ctx.format, &answer, |v| {
                format!("token {} revoked\n", cell(v, "id"))
            })
        }
    }
}

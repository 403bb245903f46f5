//! An authenticated caller and what it may do.

use super::model::{Role, Scopes};
use crate::core::error::{Error, Result};
use crate::core::model::Metadata;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read configs, flags, schemas, history, audit and drift; evaluate; watch.
    Read,
    /// Report the config an instance applied.
    ReportApplied,
    /// Change configs, schemas and flags; create change requests.
    Write,
    /// Read configs with secrets resolved.
    ResolveSecrets,
    /// Approve or reject change requests.
    Approve,
    /// Create, list and revoke tokens; read denied attempts.
    ManageTokens,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::ReportApplied => "report-applied",
            Permission::Write => "write",
            Permission::ResolveSecrets => "resolve-secrets",
            Permission::Approve => "approve",
            Permission::ManageTokens => "manage-tokens",
        }
    }
}

impl Role {
    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::ConfigAdmin => matches!(permission, Read | ReportApplied | Write | Approve),
            Role::SecretsAdmin => matches!(permission, Read | ReportApplied | ResolveSecrets),
            Role::ConfigReader => matches!(permission, Read | ReportApplied),
        }
    }
}

/// Who is calling: an API token, a JWT subject, or the configured admin token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Recorded as the actor of changes: `token:{name}`, `jwt:{sub}` or `admin`.
    pub name: String,
    pub roles: Vec<Role>,
    pub scopes: Scopes,
    /// What rate limiting counts against (a token id, a JWT subject).
    pub rate_key: String,
}

impl Identity {
    pub fn has(&self, permission: Permission) -> bool {
        self.roles.iter().any(|role| role.grants(permission))
    }

    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.has(permission) {
            return Ok(());
        }
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        Err(Error::forbidden(format!(
            "'{}' (roles: {}) lacks the {} permission",
            self.name,
            roles.join(", "),
            permission.as_str()
        )))
    }

    /// The config id or flag key is within the token's prefixes.
    pub fn require_resource(&self, id: &str) -> Result<()> {
        if self.scopes.allows_resource(id) {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "'{}' is scoped to ids starting with {}; '{id}' is outside",
            self.name,
            self.scopes.config_prefixes.join(", ")
        )))
    }

    pub fn require_environment(&self, environment: &str) -> Result<()> {
        if self.scopes.allows_environment(environment) {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "'{}' is scoped to environments {}; '{environment}' is outside",
            self.name,
            self.scopes.environments.join(", ")
        )))
    }

    /// A watch prefix must lie inside one of the token's prefixes (an empty or shorter prefix
    /// would reach ids outside).
    pub fn require_prefix(&self, prefix: &str) -> Result<()> {
        if self.scopes.config_prefixes.is_empty()
            || self
                .scopes
                .config_prefixes
                .iter()
                .any(|p| prefix.starts_with(p.as_str()))
        {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "'{}' is scoped to ids starting with {}; prefix '{prefix}' reaches others",
            self.name,
            self.scopes.config_prefixes.join(", ")
        )))
    }

    /// Operations over every config (global audit, drift, unfiltered watch) need a token
    /// without id prefixes.
    pub fn require_unscoped_ids(&self) -> Result<()> {
        if self.scopes.config_prefixes.is_empty() {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "'{}' is scoped to some ids; name them (this operation covers every config)",
            self.name
        )))
    }

    /// The metadata of a change made by this identity: the actor is the identity; what the
    /// client called itself is kept as "on behalf of", and the environment scope travels along
    /// for the core to check against what the change touches.
    pub fn stamp(&self, metadata: Metadata) -> Metadata {
        let on_behalf_of =
            (metadata.actor != self.name && !metadata.actor.is_empty()).then_some(metadata.actor);
        Metadata {
            actor: self.name.clone(),
            message: metadata.message,
            on_behalf_of,
            allowed_environments: (!self.scopes.environments.is_empty())
                .then(|| self.scopes.environments.clone()),
        }
    }
}

/// The caller of a request: `None` when access control is off (`SUMMIT_NO_AUTH`).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<std::sync::Arc<Identity>>);

impl Caller {
    pub fn require(&self, permission: Permission) -> Result<()> {
        self.0.as_ref().map_or(Ok(()), |id| id.require(permission))
    }

    pub fn require_resource(&self, id: &str) -> Result<()> {
        self.0.as_ref().map_or(Ok(()), |i| i.require_resource(id))
    }

    pub fn require_environment(&self, environment: &str) -> Result<()> {
        self.0
            .as_ref()
            .map_or(Ok(()), |i| i.require_environment(environment))
    }

    pub fn require_unscoped_ids(&self) -> Result<()> {
        self.0.as_ref().map_or(Ok(()), |i| i.require_unscoped_ids())
    }

    pub fn require_prefix(&self, prefix: &str) -> Result<()> {
        self.0.as_ref().map_or(Ok(()), |i| i.require_prefix(prefix))
    }

    /// An environment-scoped identity must name its environment (the base view belongs to
    /// every environment).
    pub fn require_environment_named(&self) -> Result<()> {
        match &self.0 {
            Some(identity) if !identity.scopes.environments.is_empty() => Err(Error::forbidden(
                format!("'{}' is scoped to environments; name one", identity.name),
            )),
            _ => Ok(()),
        }
    }

    pub fn allows_resource(&self, id: &str) -> bool {
        self.0.as_ref().is_none_or(|i| i.scopes.allows_resource(id))
    }

    pub fn stamp(&self, metadata: Metadata) -> Metadata {
        match &self.0 {
            Some(identity) => identity.stamp(metadata),
            None => metadata,
        }
    }

    /// The actor to record for actions without a body (deletes, approvals).
    pub fn actor_or(&self, fallback: &str) -> String {
        self.0
            .as_ref()
            .map_or_else(|| fallback.to_owned(), |i| i.name.clone())
    }
}

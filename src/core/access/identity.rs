//! An authenticated caller and what it may do.

use std::sync::Arc;

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
    /// Write, list, describe and delete secrets of the built-in store, and read their values.
    ManageSecrets,
    /// Register, heartbeat and deregister instances of a service in the registry.
    Register,
    /// Create, change, delete and rotate webhooks; read their delivery logs; redeliver.
    ManageWebhooks,
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
            Permission::ManageSecrets => "manage-secrets",
            Permission::Register => "register",
            Permission::ManageWebhooks => "manage-webhooks",
        }
    }
}

impl Role {
    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::ConfigAdmin => matches!(permission, Read | ReportApplied | Write | Approve),
            Role::SecretsAdmin => {
                matches!(
                    permission,
                    Read | ReportApplied | ResolveSecrets | ManageSecrets
                )
            }
            Role::ConfigReader => matches!(permission, Read | ReportApplied),
            Role::ServiceInstance => matches!(permission, Register),
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
    /// The identity of every caller when access control is off.
    pub unrestricted: bool,
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

/// The caller of a core operation: always an identity. With access control off it is the
/// explicit unrestricted identity (`Caller::unrestricted`), never a missing one, so every
/// operation decides the same way whatever the transport.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Identity>);

impl Caller {
    /// Access control off (`SUMMIT_NO_AUTH`): every permission, no scopes; changes are recorded
    /// under the actor the client names.
    pub fn unrestricted() -> Caller {
        // One shared identity: this is every request's caller when access control is off.
        static UNRESTRICTED: std::sync::LazyLock<Arc<Identity>> = std::sync::LazyLock::new(|| {
            Arc::new(Identity {
                name: "anonymous".into(),
                roles: vec![Role::Admin],
                scopes: Scopes::default(),
                rate_key: String::new(),
                unrestricted: true,
            })
        });
        Caller(UNRESTRICTED.clone())
    }

    pub fn identity(&self) -> &Identity {
        &self.0
    }

    pub fn require(&self, permission: Permission) -> Result<()> {
        self.0.require(permission)
    }

    /// The permission, on a config id or flag key inside the identity's prefixes; a refusal
    /// names the resource.
    pub fn require_on(&self, permission: Permission, id: &str) -> Result<()> {
        self.0
            .require(permission)
            .and_then(|()| self.0.require_resource(id))
            .map_err(|error| error.on_resource(id))
    }

    pub fn require_resource(&self, id: &str) -> Result<()> {
        self.0
            .require_resource(id)
            .map_err(|error| error.on_resource(id))
    }

    pub fn require_environment(&self, environment: &str) -> Result<()> {
        self.0.require_environment(environment)
    }

    /// The permission, on a service inside the identity's service scope; a refusal names the
    /// service.
    pub fn require_on_service(&self, permission: Permission, service: &str) -> Result<()> {
        self.0
            .require(permission)
            .and_then(|()| {
                if self.0.scopes.allows_service(service) {
                    return Ok(());
                }
                Err(Error::forbidden(format!(
                    "'{}' is scoped to services {}; '{service}' is outside",
                    self.0.name,
                    self.0.scopes.services.join(", ")
                )))
            })
            .map_err(|error| error.on_resource(service))
    }

    pub fn require_unscoped_ids(&self) -> Result<()> {
        self.0.require_unscoped_ids()
    }

    pub fn require_prefix(&self, prefix: &str) -> Result<()> {
        self.0.require_prefix(prefix)
    }

    /// An environment-scoped identity must name an environment it may read (the views of an
    /// unnamed environment are the base, which belongs to every environment).
    pub fn require_readable_environment(&self, environment: Option<&str>) -> Result<()> {
        match environment {
            Some(environment) => self.require_environment(environment),
            None if !self.0.scopes.environments.is_empty() => Err(Error::forbidden(format!(
                "'{}' is scoped to environments; name one with ?environment=",
                self.0.name
            ))),
            None => Ok(()),
        }
    }

    pub fn allows_resource(&self, id: &str) -> bool {
        self.0.scopes.allows_resource(id)
    }

    pub fn stamp(&self, metadata: Metadata) -> Metadata {
        if self.0.unrestricted {
            return metadata;
        }
        self.0.stamp(metadata)
    }

    /// The metadata a request gave, else this caller as the actor (`anonymous` without access
    /// control: deletes and actions may come without a body); stamped.
    pub fn metadata_or_own(&self, metadata: Option<Metadata>) -> Metadata {
        self.stamp(metadata.unwrap_or_else(|| Metadata {
            actor: self.actor_or("anonymous"),
            ..Default::default()
        }))
    }

    /// The actor to record for actions without a body (deletes, approvals).
    pub fn actor_or(&self, fallback: &str) -> String {
        if self.0.unrestricted {
            fallback.to_owned()
        } else {
            self.0.name.clone()
        }
    }
}

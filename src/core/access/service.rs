//! `AccessService`: authenticates bearer credentials (API tokens, JWTs, the configured admin
//! token), manages API tokens, limits request rates per identity, records denied attempts, and
//! creates the first admin token. Token texts are never stored, logged or echoed: only their
//! SHA-256 is kept.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::identity::{Caller, Identity, Permission};
pub use super::jwt::JwtSettings;
use super::jwt::JwtVerifier;
use super::model::{ApiToken, Denial, Role, Scopes};
use crate::core::error::{Error, Result};
use crate::core::model::{AuditDraft, Page};
use crate::core::ports::{ReadCache, Storage, Store, TokenMap, TokenRevoke, TokenWrite};
use crate::core::service::now;

/// Token texts start with this, so they are recognisable in leak scanners.
pub const TOKEN_PREFIX: &str = "sc_";
const MIN_ADMIN_TOKEN: usize = 24;
pub(super) const MAX_TOKEN_NAME: usize = 128;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token_text() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Whether an identity may be remembered by a connection: API tokens and the admin token until
/// a token changes (or their expiry, when they have one); JWTs never (each carries its own
/// expiry and is verified every time).
enum Memorable {
    No,
    Until(Option<DateTime<Utc>>),
}

/// The last credential one connection presented and whom it identified, so the next request
/// on that connection with the same credential skips hashing and lookups. Valid while the
/// token set is the one it was checked against (any create or revoke swaps the set) and the
/// token has not expired. Dropped with the connection.
#[derive(Default)]
pub struct CredentialMemo(parking_lot::Mutex<Option<Remembered>>);

struct Remembered {
    credential: Box<str>,
    identity: Arc<Identity>,
    tokens: Arc<TokenMap>,
    expires_at: Option<DateTime<Utc>>,
}

impl CredentialMemo {
    fn recall(&self, credential: &str, tokens: &Arc<TokenMap>) -> Option<Arc<Identity>> {
        let remembered = self.0.lock();
        let remembered = remembered.as_ref()?;
        let valid = Arc::ptr_eq(&remembered.tokens, tokens)
            && remembered.expires_at.is_none_or(|at| Utc::now() < at)
            && bool::from(
                remembered
                    .credential
                    .as_bytes()
                    .ct_eq(credential.as_bytes()),
            );
        valid.then(|| remembered.identity.clone())
    }

    fn remember(
        &self,
        credential: &str,
        identity: Arc<Identity>,
        tokens: Arc<TokenMap>,
        expires_at: Option<DateTime<Utc>>,
    ) {
        *self.0.lock() = Some(Remembered {
            credential: credential.into(),
            identity,
            tokens,
            expires_at,
        });
    }
}

pub(super) fn unauthenticated(reason: &str) -> Error {
    Error::Unauthenticated {
        reason: reason.to_owned(),
    }
}

pub struct AccessSettings {
    /// Access control on (the default) or off (`SUMMIT_NO_AUTH`).
    pub enabled: bool,
    pub admin_token: Option<String>,
    pub data_dir: PathBuf,
    pub jwt: JwtSettings,
    /// Requests per second and burst per identity; `None`: unlimited.
    pub rate_limit: Option<(NonZeroU32, NonZeroU32)>,
}

/// A token as created: the record, and its text, shown this once.
pub struct CreatedToken {
    pub token: ApiToken,
    pub text: String,
}

/// A request to create a token.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub scopes: Scopes,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

pub struct AccessService {
    store: Arc<dyn Store>,
    cache: Arc<dyn ReadCache>,
    enabled: bool,
    admin_token_hash: Option<String>,
    admin: Arc<Identity>,
    /// Identities of API tokens by token id, built once (a token's roles and scopes never
    /// change; whether it is still active is checked on every request).
    identities: dashmap::DashMap<String, Arc<Identity>>,
    jwt: Option<JwtVerifier>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl AccessService {
    pub fn new(storage: Storage, settings: AccessSettings) -> Result<Self> {
        if let Some(token) = &settings.admin_token
            && token.len() < MIN_ADMIN_TOKEN
        {
            return Err(Error::invalid(
                "adminToken",
                format!("SUMMIT_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters"),
            ));
        }
        Ok(AccessService {
            store: storage.store,
            cache: storage.cache,
            enabled: settings.enabled,
            admin_token_hash: settings.admin_token.as_deref().map(token_hash),
            admin: Arc::new(Identity {
                name: "admin".into(),
                roles: vec![Role::Admin],
                scopes: Scopes::default(),
                rate_key: "admin".into(),
                unrestricted: false,
            }),
            identities: dashmap::DashMap::new(),
            jwt: JwtVerifier::new(settings.jwt)?,
            limiter: settings.rate_limit.map(|(per_second, burst)| {
                RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
            }),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// On a first start (access control on, no `SUMMIT_ADMIN_TOKEN`, no active admin token
    /// stored), creates an admin token and writes it to `{data_dir}/admin-token` (mode 0600).
    /// Returns the file's path when it did.
    pub async fn bootstrap(&self, data_dir: &Path) -> Result<Option<PathBuf>> {
        if !self.enabled || self.admin_token_hash.is_some() {
            return Ok(None);
        }
        let at = now();
        let tokens = self.store.tokens().await?;
        if tokens
            .iter()
            .any(|t| t.is_active(at) && t.roles.contains(&Role::Admin))
        {
            return Ok(None);
        }
        // The file first: a token stored but never written out would lock everyone out.
        let text = new_token_text();
        let path = data_dir.join("admin-token");
        write_private(&path, &format!("{text}\n")).map_err(|e| Error::Unavailable {
            reason: format!("cannot write the admin token to {}: {e}", path.display()),
        })?;
        let stored = self
            .store_token(
                "summit-config",
                text,
                NewToken {
                    name: "bootstrap-admin".into(),
                    roles: vec![Role::Admin],
                    scopes: Scopes::default(),
                    expires_at: None,
                },
            )
            .await;
        if let Err(error) = stored {
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        Ok(Some(path))
    }

    /// The identity behind `Authorization: Bearer <credential>`, without I/O (tokens are in
    /// the read cache).
    pub fn authenticate(&self, credential: Option<&str>) -> Result<Arc<Identity>> {
        self.authenticate_with(credential)
            .map(|(identity, _)| identity)
    }

    /// `authenticate`, answered from `memo` when it holds this very credential and no token
    /// changed since (a connection sends the same credential request after request; this
    /// skips hashing it and looking it up). JWTs are checked every time.
    pub fn authenticate_remembering(
        &self,
        credential: Option<&str>,
        memo: &CredentialMemo,
    ) -> Result<Arc<Identity>> {
        let tokens = self.cache.cached_tokens();
        if let Some(credential) = credential
            && let Some(identity) = memo.recall(credential, &tokens)
        {
            return Ok(identity);
        }
        let (identity, memorable) = self.authenticate_with(credential)?;
        if let (Some(credential), Memorable::Until(expires_at)) = (credential, memorable) {
            memo.remember(credential, identity.clone(), tokens, expires_at);
        }
        Ok(identity)
    }

    /// The identity, and whether a connection may remember it.
    fn authenticate_with(&self, credential: Option<&str>) -> Result<(Arc<Identity>, Memorable)> {
        let Some(credential) = credential.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(unauthenticated(
                "authentication required: send Authorization: Bearer <token>",
            ));
        };
        let hash = token_hash(credential);
        if let Some(admin) = &self.admin_token_hash
            && bool::from(admin.as_bytes().ct_eq(hash.as_bytes()))
        {
            return Ok((self.admin.clone(), Memorable::Until(None)));
        }
        if credential.starts_with(TOKEN_PREFIX) {
            return match self.cache.cached_tokens().get(&hash) {
                Some(token) if token.is_active(now()) => {
                    Ok((self.identity_of(token), Memorable::Until(token.expires_at)))
                }
                _ => Err(unauthenticated("invalid, expired or revoked token")),
            };
        }
        match &self.jwt {
            Some(jwt) if credential.matches('.').count() == 2 => jwt
                .verify(credential)
                .map(|claims| (Arc::new(claims), Memorable::No)),
            _ => Err(unauthenticated("invalid, expired or revoked token")),
        }
    }

    /// The token's identity, built on its first use (reads take no write lock).
    fn identity_of(&self, token: &ApiToken) -> Arc<Identity> {
        if let Some(known) = self.identities.get(&token.id) {
            return known.clone();
        }
        let identity = Arc::new(Identity {
            name: format!("token:{}", token.name),
            roles: token.roles.clone(),
            scopes: token.scopes.clone(),
            rate_key: token.id.clone(),
            unrestricted: false,
        });
        self.identities.insert(token.id.clone(), identity.clone());
        identity
    }

    /// Forgets rate-limit state of identities that have been idle long enough to be back at a
    /// full burst (JWT subjects are unbounded; call this now and then).
    pub fn forget_idle_rates(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Counts one request against the identity's rate.
    pub fn check_rate(&self, identity: &Identity) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&identity.rate_key).map_err(|not_until| {
            metrics::counter!("summit_rate_limited_total").increment(1);
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Error::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Appends a denied attempt; a failure to record it is logged, not returned (the caller
    /// is answered 403 either way).
    pub async fn record_denial(
        &self,
        actor: &str,
        operation: &str,
        resource: Option<&str>,
        reason: &str,
    ) {
        let denial = Denial {
            id: 0,
            at: now(),
            actor: actor.to_owned(),
            operation: operation.to_owned(),
            resource: resource.map(str::to_owned),
            reason: reason.to_owned(),
        };
        if let Err(error) = self.store.record_denial(denial).await {
            tracing::warn!(%error, "could not record a denied attempt");
        }
    }

    /// Token management and the denied-attempts record need an authenticated identity with
    /// the permission: with access control off there is nobody to manage tokens for. The
    /// identity must have no scopes either: a token it creates may reach any id, environment
    /// and service, so a scoped one could otherwise mint itself an unscoped token.
    fn require_token_manager(caller: &Caller) -> Result<()> {
        let identity = caller.identity();
        if identity.unrestricted {
            return Err(Error::forbidden(
                "token management needs access control (it is off: SUMMIT_NO_AUTH)",
            ));
        }
        caller.require(Permission::ManageTokens)?;
        if !identity.scopes.is_unlimited() {
            return Err(Error::forbidden(format!(
                "'{}' has scopes; token management needs a credential without any (a token \
                 it creates may reach every id, environment and service)",
                identity.name
            )));
        }
        Ok(())
    }

    pub async fn denials(
        &self,
        caller: &Caller,
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<Denial>> {
        Self::require_token_manager(caller)?;
        let items = self.store.denials(cursor, limit).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|d| d.id))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub async fn create_token(&self, creator: &Caller, request: NewToken) -> Result<CreatedToken> {
        Self::require_token_manager(creator)?;
        self.create_with_actor(&creator.identity().name, request)
            .await
    }

    async fn create_with_actor(&self, actor: &str, request: NewToken) -> Result<CreatedToken> {
        self.store_token(actor, new_token_text(), request).await
    }

    async fn store_token(
        &self,
        actor: &str,
        text: String,
        request: NewToken,
    ) -> Result<CreatedToken> {
        let name = request.name.trim();
        if name.is_empty() || name.len() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "/name",
                format!("a token name is 1 to {MAX_TOKEN_NAME} bytes without control characters"),
            ));
        }
        if request.roles.is_empty() {
            return Err(Error::invalid("/roles", "name at least one role"));
        }
        for (index, prefix) in request.scopes.config_prefixes.iter().enumerate() {
            if prefix.is_empty() || prefix.len() > 128 || prefix.chars().any(char::is_control) {
                return Err(Error::invalid(
                    format!("/scopes/configPrefixes/{index}"),
                    "a prefix is 1 to 128 bytes without control characters",
                ));
            }
        }
        for (index, env) in request.scopes.environments.iter().enumerate() {
            crate::core::ids::Environment::parse_field(
                env,
                &format!("/scopes/environments/{index}"),
            )?;
        }
        for (index, service) in request.scopes.services.iter().enumerate() {
            crate::core::ids::ServiceName::parse_field(
                service,
                &format!("/scopes/services/{index}"),
            )?;
        }
        let created_at = now();
        if request.expires_at.is_some_and(|at| at <= created_at) {
            return Err(Error::invalid(
                "/expiresAt",
                "expiresAt must be in the future",
            ));
        }
        let token = ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            roles: request.roles,
            scopes: request.scopes,
            hash: token_hash(&text),
            created_at,
            created_by: actor.to_owned(),
            expires_at: request.expires_at,
            revoked_at: None,
        };
        self.store
            .create_token(TokenWrite {
                token: token.clone(),
                audit: AuditDraft {
                    actor: actor.to_owned(),
                    action: "token.create",
                    environments: Vec::new(),
                    message: Some(format!("token '{}'", token.name)),
                    on_behalf_of: None,
                    details: Default::default(),
                },
            })
            .await?;
        Ok(CreatedToken { token, text })
    }

    pub async fn tokens(&self, caller: &Caller) -> Result<Vec<ApiToken>> {
        Self::require_token_manager(caller)?;
        self.store.tokens().await
    }

    /// Revokes at once: the next request with the token is refused on this replica, and on
    /// the others as soon as they apply the `token.revoked` change.
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<()> {
        Self::require_token_manager(caller)?;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::invalid("tokenId", "a token id is a UUID"));
        }
        self.store
            .revoke_token(TokenRevoke {
                id: id.to_owned(),
                at: now(),
                audit: AuditDraft {
                    actor: caller.identity().name.clone(),
                    action: "token.revoke",
                    environments: Vec::new(),
                    message: None,
                    on_behalf_of: None,
                    details: Default::default(),
                },
            })
            .await?;
        Ok(())
    }
}

/// Writes `contents` to a new file at `path`, readable and writable by the owner only. A file
/// (or symlink) already there is removed first, never followed.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    // O_EXCL: fails rather than follow a symlink planted after the removal.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // The umask cannot loosen 0600, but make the mode explicit anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    }
}

//! Builds the store, the core and the listeners; the port is known once `build` returns. What
//! the settings make of each part (secret providers, environments, retries, access) is in
//! `configure`.

mod configure;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use configure::{
    access_settings, deployment_environments, list, protected_environments, retry_schedule,
    secret_resolver,
};

use crate::api::grpc::GrpcServer;
use crate::api::http::{self, AppContext, AppState, HttpLimits};
use crate::connections::Limits;
use crate::core::access::AccessService;
use crate::core::deployments::{DeploymentService, StrategyService};
use crate::core::error::Error;
use crate::core::flags::FlagService;
use crate::core::notifications::targets::Targets;
use crate::core::notifications::{DispatchSettings, Dispatcher, NotificationService};
use crate::core::ports::{Database, Documents, Storage, Store};
use crate::core::registry::{RegistryService, RegistrySettings};
use crate::core::secrets::crypto::Keyring;
use crate::core::secrets::{SecretService, StoreProvider};
use crate::core::service::{ConfigService, ServiceSettings};
use crate::replication::{
    follow_changes, run_deployments, run_duties, run_registry, run_rotations,
};
use crate::settings::Settings;
use crate::store::{CachedStore, MemoryStore, PostgresStore, SqliteStore};
use crate::telemetry::collector::Collector;
use crate::tls::{TlsFiles, tls_config};

pub struct App {
    listener: TcpListener,
    grpc_listener: TcpListener,
    /// The REST router, and the state the effective read ahead of it is answered from.
    rest: http::access::WithCredentialMemo,
    /// What the gRPC listener serves, over the same services as REST.
    grpc: GrpcServer,
    /// Certificate and key (PEM) both transports serve TLS with, when configured.
    tls: Option<TlsFiles>,
    /// Connection bound, deadlines and HTTP/2 limits of both listeners.
    connections: Limits,
    shutdown: CancellationToken,
}

/// The backend named by the database URL, migrated, without the cache.
pub async fn open_backend(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    Ok(if database_url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::open(database_url)
                .await
                .context("opening the SQLite store")?,
        )
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Arc::new(
            PostgresStore::open(database_url)
                .await
                .context("opening the PostgreSQL store")?,
        )
    } else if database_url == "memory://" {
        Arc::new(MemoryStore::new())
    } else {
        anyhow::bail!(
            "unsupported database URL scheme (use sqlite://PATH, postgres://… or memory://)"
        );
    })
}

/// Where generated files (the first admin token) go: `--data-dir`, else the SQLite file's
/// directory, else ./data.
pub(crate) fn data_dir(settings: &Settings) -> std::path::PathBuf {
    if let Some(dir) = &settings.data_dir {
        return dir.clone();
    }
    sqlite_file(&settings.database_url)
        .and_then(|path| path.parent().map(ToOwned::to_owned))
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::PathBuf::from("./data"))
}

/// The SQLite database file a `sqlite:` URL names.
pub(crate) fn sqlite_file(database_url: &str) -> Option<std::path::PathBuf> {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|path| path.split('?').next().unwrap_or(path))
        .map(std::path::PathBuf::from)
}

/// The secret store's key file: as configured, else `secret-key` in the data directory.
pub(crate) fn secret_key_file(settings: &Settings) -> std::path::PathBuf {
    settings
        .secret_key_file
        .clone()
        .unwrap_or_else(|| data_dir(settings).join("secret-key"))
}

/// A core error at start-up, with what it is about. An internal error's detail (never shown to
/// clients) is what the operator reading this needs.
fn at_start(context: &str) -> impl FnOnce(Error) -> anyhow::Error + '_ {
    move |error| match error {
        Error::Internal { detail } => anyhow::anyhow!("{context}: {detail}"),
        error => anyhow::anyhow!("{context}: {error}"),
    }
}

/// The secret store's keys. Creating a missing key file first asks which keys the stored
/// secrets and webhook signing secrets are sealed under (`Keyring::load`).
async fn open_keyring(settings: &Settings, store: &dyn Store) -> anyhow::Result<Keyring> {
    let key_file = secret_key_file(settings);
    let mut stored = std::collections::BTreeSet::new();
    if !key_file
        .try_exists()
        .with_context(|| format!("looking for the secret key file {}", key_file.display()))?
    {
        let secrets = store
            .secrets()
            .heads()
            .await
            .map_err(at_start("reading secrets"))?;
        stored.extend(
            secrets
                .iter()
                .map(|h| h.latest.document.sealed.key_id.clone()),
        );
        let webhooks = store
            .webhooks()
            .await
            .map_err(at_start("reading webhooks"))?;
        let signing = webhooks.iter().flat_map(|w| &w.secrets);
        stored.extend(signing.map(|s| s.sealed.key_id.clone()));
    }
    Keyring::load(&key_file, &settings.secret_previous_key_files, &stored)
        .map_err(at_start("the secret store's key"))
}

/// Opens the backend behind the read cache; also returns the revision the cache is current to.
pub async fn open_store(
    database_url: &str,
    max_configs: usize,
) -> anyhow::Result<(Arc<CachedStore>, u64)> {
    let inner = open_backend(database_url).await?;
    // Read before loading: replaying changes the cache already holds is harmless, missing
    // one committed during the load is not.
    let revision = inner
        .latest_revision()
        .await
        .context("reading the change log")?;
    let started = std::time::Instant::now();
    let cached = CachedStore::load_bounded(inner, max_configs)
        .await
        .context("loading the read cache")?;
    tracing::info!(
        configs = cached.cached_configs(),
        revision,
        millis = started.elapsed().as_millis() as u64,
        "read cache loaded"
    );
    Ok((Arc::new(cached), revision))
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        // One TLS crypto provider for every rustls user in the process (tonic's TLS, the
        // PostgreSQL driver); fails harmlessly when one is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Before any service exists, so that the handles they keep record.
        let metrics = crate::telemetry::collector::handle();
        let max_configs = usize::try_from(settings.cache_max_configs).unwrap_or(usize::MAX);
        let (cache, revision) = open_store(&settings.database_url, max_configs).await?;
        let storage = Storage {
            store: cache.clone(),
            cache: cache.clone(),
        };
        let keyring = Arc::new(open_keyring(&settings, cache.as_ref()).await?);
        let mut resolver = secret_resolver(&settings)?;
        resolver.register(
            "store",
            Arc::new(StoreProvider::new(cache.clone(), keyring.clone())),
        );
        tracing::info!(
            providers = %resolver.provider_names().join(","),
            "secret providers"
        );
        let service = Arc::new(ConfigService::new(
            storage.clone(),
            resolver,
            ServiceSettings {
                // The flag's range (at most a year) keeps this conversion exact.
                stale_after: chrono::Duration::seconds(settings.stale_after_secs as i64),
                watch_buffer: settings.watch_buffer,
                max_watchers: settings.max_watchers,
                protected_environments: protected_environments(&settings.protected_environments)?,
                deployment_environments: deployment_environments(
                    &settings.deployment_environments,
                )?,
            },
        ));
        let access_settings = access_settings(&settings)?;
        let token_dir = access_settings.data_dir.clone();
        let access = Arc::new(
            AccessService::new(storage.clone(), access_settings)
                .map_err(at_start("access control settings"))?,
        );
        if !access.enabled() {
            tracing::warn!(
                "access control is OFF (SUMMIT_NO_AUTH): anyone who reaches the ports may read \
                 secrets and change every config"
            );
        } else if let Some(path) = access
            .bootstrap(&token_dir)
            .await
            .map_err(at_start("creating the first admin token"))?
        {
            tracing::warn!(
                path = %path.display(),
                "first start: an admin token was generated and written to this file (mode 0600); \
                 use it to create other tokens, then keep or delete the file"
            );
        }
        let flags = Arc::new(FlagService::new(storage.clone(), service.clone()));
        let targets = Arc::new(
            Targets::new(&list(&settings.webhook_allow))
                .map_err(at_start("SUMMIT_WEBHOOK_ALLOW"))?,
        );
        let notifications_wake = Arc::new(tokio::sync::Notify::new());
        let notifications = Arc::new(NotificationService::new(
            cache.clone(),
            keyring.clone(),
            targets.clone(),
            notifications_wake.clone(),
        ));
        let secrets = Arc::new(SecretService::new(
            storage,
            service.clone(),
            keyring.clone(),
            notifications.clone(),
        ));
        let dispatcher = Dispatcher::new(
            cache.clone(),
            keyring.clone(),
            targets,
            DispatchSettings {
                schedule: retry_schedule(&settings.webhook_retry_schedule)?,
                timeout: Duration::from_millis(settings.webhook_timeout_ms),
                disable_after: chrono::Duration::seconds(
                    settings.webhook_disable_after_secs as i64,
                ),
                concurrency: settings.webhook_concurrency as usize,
                kafka_brokers: list(&settings.kafka_brokers),
                kafka_topic: settings.kafka_topic.clone(),
            },
            notifications_wake,
        )
        .map_err(at_start("starting the notification dispatcher"))?;
        dispatcher
            .prepare()
            .await
            .map_err(at_start("preparing the notification sinks"))?;
        let registry = Arc::new(RegistryService::new(
            Storage {
                store: cache.clone(),
                cache: cache.clone(),
            },
            service.clone(),
            RegistrySettings {
                protection_threshold: settings.registry_protection_threshold,
                health_timeout: Duration::from_millis(settings.registry_health_timeout_ms),
            },
        ));
        let strategies = Arc::new(StrategyService::new(cache.clone(), service.clone()));
        service
            .serving()
            .load()
            .await
            .context("loading releases and active deployments")?;
        let deployments = Arc::new(DeploymentService::new(cache.clone(), service.clone()));
        let rotation_check = Duration::from_millis(settings.secret_rotation_check_ms);
        let shutdown = CancellationToken::new();
        {
            // Rate-limit state of identities idle for long is dropped (JWT subjects are many).
            let (access, shutdown) = (access.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = every.tick() => access.forget_idle_rates(),
                    }
                }
            });
        }
        tokio::spawn(run_duties(
            cache.clone(),
            chrono::Duration::seconds(settings.applied_retention_secs as i64),
            Duration::from_secs(60),
            shutdown.clone(),
        ));
        tokio::spawn(run_rotations(
            cache.clone(),
            secrets.clone(),
            rotation_check,
            shutdown.clone(),
        ));
        tokio::spawn(run_registry(
            cache.clone(),
            registry.clone(),
            Duration::from_millis(settings.registry_expiry_check_ms),
            (settings.registry_health_check_interval_secs > 0)
                .then(|| Duration::from_secs(settings.registry_health_check_interval_secs)),
            shutdown.clone(),
        ));
        tokio::spawn(run_deployments(
            cache.clone(),
            deployments.clone(),
            Duration::from_millis(settings.deployment_tick_ms),
            shutdown.clone(),
        ));
        tokio::spawn(dispatcher.run(service.subscribe(), shutdown.clone()));
        if cache.shared_by_replicas() {
            tokio::spawn(follow_changes(
                cache.clone(),
                service.clone(),
                revision,
                shutdown.clone(),
            ));
        }
        let state = AppState::new(AppContext {
            service: service.clone(),
            flags: flags.clone(),
            secrets: secrets.clone(),
            registry: registry.clone(),
            strategies: strategies.clone(),
            deployments: deployments.clone(),
            notifications,
            access: access.clone(),
            // Sealed with the secret store's key, which every replica shares.
            console: crate::api::console::Sessions::new(keyring, settings.tls_cert_file.is_some()),
            shutdown: shutdown.clone(),
            metrics,
            collector: Arc::new(Collector::new(service.clone(), cache.clone(), {
                let cache = cache.clone();
                Box::new(move || cache.cached_configs())
            })),
            max_body_bytes: settings.max_body_bytes,
        });
        let limits = HttpLimits {
            max_body_bytes: settings.max_body_bytes,
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding the REST listener on {}", settings.http_addr))?;
        let grpc_listener = crate::api::grpc::bind(settings.grpc_addr).await?;
        let rest = http::access::WithCredentialMemo {
            router: http::router(state.clone(), &limits),
            state,
            limits,
        };
        let tls = tls_config(&settings)?;
        let connections = Limits::from_settings(&settings);
        Ok(App {
            listener,
            grpc_listener,
            rest,
            grpc: GrpcServer {
                service,
                flags,
                secrets,
                registry,
                strategies,
                deployments,
                access,
                tls: tls.clone(),
                request_timeout: Duration::from_secs(settings.request_timeout_secs),
                watch_buffer: settings.watch_buffer,
                max_message_bytes: settings.max_body_bytes,
                connections: connections.clone(),
                shutdown: shutdown.clone(),
            },
            tls,
            connections,
            shutdown,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn service(&self) -> Arc<ConfigService> {
        self.grpc.service.clone()
    }

    /// Cancelling this token stops the server gracefully: in-flight requests finish, watch
    /// streams end.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(
            http = %self.http_addr(),
            grpc = %self.grpc_addr(),
            tls = self.tls.is_some(),
            access_control = self.grpc.access.enabled(),
            max_connections = self.connections.settings.max_connections,
            "summit-config listening"
        );
        let shutdown = self.shutdown.clone();
        let grpc = crate::api::grpc::serve(self.grpc_listener, self.grpc);
        let tls = match &self.tls {
            Some(files) => Some(crate::tls::server_config(
                files,
                &[b"h2".to_vec(), b"http/1.1".to_vec()],
            )?),
            None => None,
        };
        // REST ends only with a shutdown; gRPC failing stops REST too.
        let rest = crate::connections::serve_rest(
            self.listener,
            self.rest,
            tls,
            &self.connections,
            shutdown,
        );
        let grpc = async {
            let result = grpc.await;
            self.shutdown.cancel();
            result
        };
        let ((), grpc) = tokio::join!(rest, grpc);
        grpc?;
        tracing::info!("summit-config stopped");
        Ok(())
    }
}

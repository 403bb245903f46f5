//! Builds the store, the core and the listeners; the port is known once `build` returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::http::{self, AppContext, AppState, HttpLimits};
use crate::core::flags::FlagService;
use crate::core::secrets::{SecretPolicy, SecretResolver};
use crate::core::service::{ConfigService, ServiceSettings};
use crate::replication::{follow_changes, run_duties};
use crate::settings::Settings;
use crate::store::{CachedStore, MemoryStore, PostgresStore, SqliteStore, Store};

pub struct App {
    listener: TcpListener,
    grpc_listener: TcpListener,
    watch_buffer: usize,
    max_body_bytes: usize,
    router: axum::Router,
    service: Arc<ConfigService>,
    flags: Arc<FlagService>,
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
        let max_configs = usize::try_from(settings.cache_max_configs).unwrap_or(usize::MAX);
        let (cache, revision) = open_store(&settings.database_url, max_configs).await?;
        let service = Arc::new(ConfigService::new(
            cache.clone(),
            SecretResolver::new(&SecretPolicy {
                env_prefix: settings.secret_env_prefix.clone(),
                file_dir: settings.secret_file_dir.clone(),
            }),
            ServiceSettings {
                // The flag's range (at most a year) keeps this conversion exact.
                stale_after: chrono::Duration::seconds(settings.stale_after_secs as i64),
                watch_buffer: settings.watch_buffer,
                max_watchers: settings.max_watchers,
            },
        ));
        let flags = Arc::new(FlagService::new(cache.clone(), service.clone()));
        let shutdown = CancellationToken::new();
        tokio::spawn(run_duties(
            cache.clone(),
            chrono::Duration::seconds(settings.applied_retention_secs as i64),
            Duration::from_secs(60),
            shutdown.clone(),
        ));
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
            shutdown: shutdown.clone(),
            metrics: http::ops::metrics_handle(),
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
        Ok(App {
            listener,
            grpc_listener,
            watch_buffer: settings.watch_buffer,
            max_body_bytes: settings.max_body_bytes,
            router: http::router(state, &limits),
            service,
            flags,
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
        self.service.clone()
    }

    /// Cancelling this token stops the server gracefully: in-flight requests finish, watch
    /// streams end.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(http = %self.http_addr(), grpc = %self.grpc_addr(), "summit-config listening");
        let shutdown = self.shutdown.clone();
        let grpc = crate::api::grpc::serve(
            self.grpc_listener,
            self.service.clone(),
            self.flags.clone(),
            self.watch_buffer,
            self.max_body_bytes,
            self.shutdown.clone(),
        );
        let rest = async move {
            // Small writes (SSE events) go out at once rather than waiting on Nagle.
            let listener = self.listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, self.router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .context("serving REST")
        };
        // Either transport failing stops both.
        let stop = self.shutdown.clone();
        let (rest, grpc) = tokio::join!(
            async {
                let result = rest.await;
                stop.cancel();
                result
            },
            async {
                let result = grpc.await;
                self.shutdown.cancel();
                result
            }
        );
        rest?;
        grpc?;
        tracing::info!("summit-config stopped");
        Ok(())
    }
}

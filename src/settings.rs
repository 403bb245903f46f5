//! Settings: every one has a flag and a `SUMMIT_*` environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "summit-config",
    version,
    about = "Runtime configuration service",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (the default when no command is given).
    Serve(Settings),
    /// Create or upgrade the database schema, then exit (the server also does this at start-up).
    Migrate(Settings),
    #[command(flatten)]
    Client(crate::cli::ClientCommand),
}

impl Cli {
    pub fn into_settings(self) -> Settings {
        match self.command {
            Some(Command::Serve(settings) | Command::Migrate(settings)) => settings,
            Some(Command::Client(_)) | None => self.settings,
        }
    }

    pub fn is_migrate(&self) -> bool {
        matches!(self.command, Some(Command::Migrate(_)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// REST listen address; port 0 picks a free port.
    #[arg(long, env = "SUMMIT_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// gRPC listen address; port 0 picks a free port.
    #[arg(long, env = "SUMMIT_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// `sqlite://PATH` (created if absent), `postgres://USER:PASSWORD@HOST/DB`, or `memory://`.
    #[arg(
        long,
        env = "SUMMIT_DATABASE_URL",
        default_value = "sqlite://./data/summit-config.db"
    )]
    pub database_url: String,

    #[arg(long, env = "SUMMIT_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info,summit_config=debug`.
    #[arg(long, env = "SUMMIT_LOG", default_value = "info")]
    pub log_filter: String,

    /// OTLP/gRPC collector to export traces to, e.g. `http://127.0.0.1:4317`; unset: no
    /// tracing (spans are not even created).
    #[arg(long, env = "SUMMIT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// `service.name` of the exported traces.
    #[arg(
        long,
        env = "SUMMIT_OTLP_SERVICE_NAME",
        default_value = "summit-config"
    )]
    pub otlp_service_name: String,

    /// More resource attributes, `key=value,key=value` (e.g.
    /// `deployment.environment=production,service.instance.id=pod-a`).
    #[arg(long, env = "SUMMIT_OTLP_RESOURCE_ATTRIBUTES", default_value = "")]
    pub otlp_resource_attributes: String,

    /// Share of traces sampled (0.0 to 1.0) when the caller did not decide; a caller's sampled
    /// `traceparent` is always followed.
    #[arg(long, env = "SUMMIT_OTLP_SAMPLE_RATIO", default_value_t = 1.0,
          value_parser = sample_ratio)]
    pub otlp_sample_ratio: f64,

    /// Largest accepted request body, in bytes; larger ones get 413.
    #[arg(long, env = "SUMMIT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds without a report after which an instance counts as stale (1 s to 1 year).
    #[arg(long, env = "SUMMIT_STALE_AFTER_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub stale_after_secs: u64,

    /// `env:` secret references may only name variables with this prefix (empty: any variable
    /// except the server's own `SUMMIT_*`). Set it in production.
    #[arg(long, env = "SUMMIT_SECRET_ENV_PREFIX", default_value = "")]
    pub secret_env_prefix: String,

    /// `file:` secret references must resolve inside this directory.
    #[arg(long, env = "SUMMIT_SECRET_FILE_DIR", default_value = "/run/secrets")]
    pub secret_file_dir: std::path::PathBuf,

    /// Longest a secret provider may take to answer (a file read, a Vault or Secrets Manager
    /// request), in milliseconds; past it the read fails with 502 naming the reference.
    #[arg(long, env = "SUMMIT_SECRET_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub secret_timeout_ms: u64,

    /// Seconds a value fetched from Vault or Secrets Manager is reused before it is fetched again.
    #[arg(long, env = "SUMMIT_SECRET_CACHE_TTL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub secret_cache_ttl_secs: u64,

    /// Values each remote secret provider keeps cached at most.
    #[arg(long, env = "SUMMIT_SECRET_CACHE_MAX_ENTRIES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub secret_cache_max_entries: u64,

    /// Vault (or OpenBao) server for `vault:` references, e.g. `https://vault.internal:8200`.
    /// Unset: no `vault:` provider, and configs using one are refused.
    #[arg(long, env = "SUMMIT_VAULT_ADDR")]
    pub vault_addr: Option<String>,

    /// Vault token. Never logged.
    #[arg(
        long,
        env = "SUMMIT_VAULT_TOKEN",
        hide_env_values = true,
        requires = "vault_addr",
        conflicts_with = "vault_token_file"
    )]
    pub vault_token: Option<String>,

    /// File holding the Vault token, read again on every fetch (an agent may renew it).
    #[arg(long, env = "SUMMIT_VAULT_TOKEN_FILE", requires = "vault_addr")]
    pub vault_token_file: Option<std::path::PathBuf>,

    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[arg(long, env = "SUMMIT_VAULT_NAMESPACE", requires = "vault_addr")]
    pub vault_namespace: Option<String>,

    /// Secrets Manager endpoint instead of `https://secretsmanager.REGION.amazonaws.com`.
    #[arg(long, env = "SUMMIT_AWSSM_ENDPOINT")]
    pub awssm_endpoint: Option<String>,

    /// AWS region of `awssm:` references; the `awssm:` provider exists when this (or
    /// `AWS_DEFAULT_REGION`) and both key variables are set.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,

    /// Used when `AWS_REGION` is unset.
    #[arg(long, env = "AWS_DEFAULT_REGION")]
    pub aws_default_region: Option<String>,

    /// AWS access key id for Secrets Manager. Never logged.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<String>,

    /// AWS secret access key. Never logged.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,

    /// AWS session token of temporary credentials. Never logged.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<String>,

    /// Config heads kept in the read cache; reads of others go to the database.
    #[arg(long, env = "SUMMIT_CACHE_MAX_CONFIGS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_configs: u64,

    /// Applied-state reports older than this many seconds are deleted (by one replica).
    #[arg(long, env = "SUMMIT_APPLIED_RETENTION_SECS", default_value_t = 7 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(60..=10 * 365 * 24 * 3600))]
    pub applied_retention_secs: u64,

    /// Concurrent watch streams; more get 503.
    #[arg(long, env = "SUMMIT_MAX_WATCHERS", default_value_t = 10_000)]
    pub max_watchers: usize,

    /// Change events buffered per watcher before it is caught up from the change log (and the
    /// most a watcher whose client stops reading holds).
    #[arg(long, env = "SUMMIT_WATCH_BUFFER", default_value_t = 256)]
    pub watch_buffer: usize,

    /// Seconds a request may take before it is answered with 503 (REST) or DEADLINE_EXCEEDED
    /// (gRPC unary calls).
    #[arg(long, env = "SUMMIT_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Open client connections, REST and gRPC together. A new one beyond them takes the slot of
    /// the oldest that has not sent its first request yet (gRPC: its preface), else of the one
    /// with nothing in flight for the longest (at least 2 s); when every one is in use, it is
    /// refused at once (plain REST answers 503). 0: the open-file limit less a reserve (an
    /// eighth of it, plus 64) for the database, files and outgoing connections.
    #[arg(long, env = "SUMMIT_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Seconds a new connection has to complete its TLS handshake and send its first request's
    /// headers (gRPC: the HTTP/2 preface); slower ones are closed.
    #[arg(long, env = "SUMMIT_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,

    /// Seconds an HTTP/1.1 connection may wait for its next request before it is closed; a
    /// connection whose client takes nothing of what it is sent for this long (a watcher that
    /// stopped reading) is closed too.
    #[arg(long, env = "SUMMIT_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// Seconds of silence after which an HTTP/2 connection (gRPC, REST over HTTP/2) is pinged.
    #[arg(long, env = "SUMMIT_HTTP2_KEEPALIVE_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http2_keepalive_interval_secs: u64,

    /// Seconds a ping may go unanswered before the connection is closed.
    #[arg(long, env = "SUMMIT_HTTP2_KEEPALIVE_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http2_keepalive_timeout_secs: u64,

    /// Streams (calls, watches) open at once on one HTTP/2 connection.
    #[arg(long, env = "SUMMIT_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// Turns access control off: every caller may do everything and the actor of a change is
    /// the `metadata.actor` it sends. For local experiments only; logged loudly at start.
    #[arg(long, env = "SUMMIT_NO_AUTH", default_value_t = false)]
    pub no_auth: bool,

    /// An admin token to accept (at least 24 characters) instead of generating one on first
    /// start. Never logged.
    #[arg(long, env = "SUMMIT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// The key-encryption key of the built-in secret store (base64 of 32 bytes), created with
    /// mode 0600 on first start when absent. Default: `secret-key` in the data directory. Back it
    /// up: without it no stored secret can be read.
    #[arg(long, env = "SUMMIT_SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,

    /// Earlier key files (comma-separated), kept only to open what they sealed until
    /// `POST /api/v1/secret-keys/rewrap` has wrapped everything under the current key.
    #[arg(long, env = "SUMMIT_SECRET_PREVIOUS_KEY_FILES", value_delimiter = ',')]
    pub secret_previous_key_files: Vec<std::path::PathBuf>,

    /// How often the replica holding the duties lease looks for secrets due for rotation.
    #[arg(long, env = "SUMMIT_SECRET_ROTATION_CHECK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub secret_rotation_check_ms: u64,

    /// How often the lease holder expires instances without heartbeats (and removes those past
    /// their `deregisterAfterSecs`), in milliseconds.
    #[arg(long, env = "SUMMIT_REGISTRY_EXPIRY_CHECK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub registry_expiry_check_ms: u64,

    /// Calls every registered instance's `healthCheckUrl` this often (seconds), on the lease
    /// holder; 0 (the default) turns periodic health checks off.
    #[arg(
        long,
        env = "SUMMIT_REGISTRY_HEALTH_CHECK_INTERVAL_SECS",
        default_value_t = 0
    )]
    pub registry_health_check_interval_secs: u64,

    /// How long a health check waits for its answer, in milliseconds.
    #[arg(long, env = "SUMMIT_REGISTRY_HEALTH_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub registry_health_timeout_ms: u64,

    /// Discovery returns every instance of a service (and says so) when fewer than this share
    /// of them are healthy, so a failing health checker cannot empty a service; 0 (the
    /// default) turns the protection off.
    #[arg(long, env = "SUMMIT_REGISTRY_PROTECTION_THRESHOLD", default_value_t = 0.0,
          value_parser = protection_threshold)]
    pub registry_protection_threshold: f64,

    /// Where the first start writes the generated admin token (`admin-token`, mode 0600).
    /// Default: the SQLite file's directory, or ./data.
    #[arg(long, env = "SUMMIT_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,

    /// Accept JWTs signed with this HS256 secret (at least 32 bytes). Never logged.
    #[arg(long, env = "SUMMIT_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// Accept JWTs signed with the RS256 key whose public half is in this PEM file.
    #[arg(long, env = "SUMMIT_JWT_RS256_PUBLIC_KEY_FILE")]
    pub jwt_rs256_public_key_file: Option<std::path::PathBuf>,

    /// Required `iss` of JWTs, when set.
    #[arg(long, env = "SUMMIT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of JWTs, when set.
    #[arg(long, env = "SUMMIT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Requests per second each identity may make (sustained); 0 turns rate limiting off.
    #[arg(long, env = "SUMMIT_RATE_LIMIT_PER_SEC", default_value_t = 1000)]
    pub rate_limit_per_sec: u32,

    /// Requests an identity may make in a burst above the sustained rate.
    #[arg(long, env = "SUMMIT_RATE_LIMIT_BURST", default_value_t = 2000)]
    pub rate_limit_burst: u32,

    /// Environments whose changes need approvals, as `name=approvals` pairs separated by
    /// commas (e.g. `production=2,staging=1`); others are applied at once.
    #[arg(long, env = "SUMMIT_PROTECTED_ENVIRONMENTS", default_value = "")]
    pub protected_environments: String,

    /// Environments where a new config version is served only through a deployment, separated
    /// by commas (e.g. `production,staging`); elsewhere every version is served at once.
    #[arg(long, env = "SUMMIT_DEPLOYMENT_ENVIRONMENTS", default_value = "")]
    pub deployment_environments: String,

    /// How often the deployment engine (on the duties-lease holder) moves deployments along.
    #[arg(long, env = "SUMMIT_DEPLOYMENT_TICK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub deployment_tick_ms: u64,

    /// Hosts, addresses and networks webhooks may target although they are loopback, private
    /// or link-local, separated by commas (e.g. `127.0.0.1,hooks.internal,10.1.0.0/16`);
    /// such targets are refused otherwise.
    #[arg(long, env = "SUMMIT_WEBHOOK_ALLOW", default_value = "")]
    pub webhook_allow: String,

    /// The waits before each retry of a failed webhook delivery, separated by commas (`ms`,
    /// `s`, `m`, `h` units); after the last, the delivery is dead-lettered.
    #[arg(
        long,
        env = "SUMMIT_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub webhook_retry_schedule: String,

    /// The most a webhook delivery attempt may take (a 2xx within it is success).
    #[arg(long, env = "SUMMIT_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub webhook_timeout_ms: u64,

    /// A webhook whose every delivery failed for this long is disabled (default 5 days).
    #[arg(
        long,
        env = "SUMMIT_WEBHOOK_DISABLE_AFTER_SECS",
        default_value_t = 432_000
    )]
    pub webhook_disable_after_secs: u64,

    /// The most webhook delivery attempts in flight at once.
    #[arg(long, env = "SUMMIT_WEBHOOK_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub webhook_concurrency: u64,

    /// Kafka brokers (`host:port`, separated by commas): every change event is produced to
    /// `--kafka-topic`. Empty: no Kafka sink.
    #[arg(long, env = "SUMMIT_KAFKA_BROKERS", default_value = "")]
    pub kafka_brokers: String,

    /// The topic change events are produced to (created when absent).
    #[arg(long, env = "SUMMIT_KAFKA_TOPIC", default_value = "config-updates")]
    pub kafka_topic: String,

    /// PEM certificate chain: REST and gRPC serve TLS only (with `--tls-key-file`).
    #[arg(long, env = "SUMMIT_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "SUMMIT_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// Defaults for an embedded test server: port 0 and the given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        let mut settings = Cli::parse_from(["summit-config"]).into_settings();
        settings.http_addr = "127.0.0.1:0".parse().expect("valid address");
        settings.grpc_addr = "127.0.0.1:0".parse().expect("valid address");
        settings.database_url = database_url.into();
        // Suites about other behaviours run without access control; the access-control suites
        // turn it back on.
        settings.no_auth = true;
        settings
    }
}

fn protection_threshold(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("a share between 0 and 1 (e.g. 0.5)".into()),
    }
}

fn sample_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{ratio} is not between 0.0 and 1.0"))
    }
}

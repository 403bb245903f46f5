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
}

impl Cli {
    pub fn into_settings(self) -> Settings {
        match self.command {
            Some(Command::Serve(settings) | Command::Migrate(settings)) => settings,
            None => self.settings,
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

    /// Change events buffered per watcher before it is caught up from the change log.
    #[arg(long, env = "SUMMIT_WATCH_BUFFER", default_value_t = 256)]
    pub watch_buffer: usize,

    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "SUMMIT_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
}

impl Settings {
    /// Defaults for an embedded test server: port 0 and the given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        let mut settings = Cli::parse_from(["summit-config"]).into_settings();
        settings.http_addr = "127.0.0.1:0".parse().expect("valid address");
        settings.grpc_addr = "127.0.0.1:0".parse().expect("valid address");
        settings.database_url = database_url.into();
        settings
    }
}

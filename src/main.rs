use clap::Parser;
use mimalloc::MiMalloc;
use summit_config::app::App;
use summit_config::settings::{Cli, Command};
use summit_config::telemetry;

/// glibc's allocator spent about a quarter of the server's CPU on writes (malloc, free and
/// consolidation; docs/performance.md); mimalloc keeps per-thread free lists.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = match Cli::parse() {
        Cli {
            command: Some(Command::Client(command)),
            settings,
        } => std::process::exit(summit_config::cli::run(command, &settings).await),
        cli => cli,
    };
    let migrate_only = cli.is_migrate();
    let settings = cli.into_settings();
    let telemetry = telemetry::init(&settings)?;
    if migrate_only {
        summit_config::app::open_backend(&settings.database_url).await?;
        tracing::info!("database schema is up to date");
        return Ok(());
    }
    // Before the listeners: their default connection bound follows the limit.
    summit_config::connections::file_limit::raise_file_limit();
    let app = App::build(settings).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        shutdown.cancel();
    });
    let stopped = app.run_until_stopped().await;
    telemetry.shutdown().await;
    stopped
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

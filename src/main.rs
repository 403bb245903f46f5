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
    // Installed before "listening" is logged: a supervisor's SIGTERM right after it is a
    // graceful stop, never the default action (an unclean exit).
    let signalled = stop_signal()?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        shutdown.cancel();
    });
    let stopped = app.run_until_stopped().await;
    telemetry.shutdown().await;
    stopped
}

/// Registers SIGTERM and SIGINT now (a signal arriving before the returned future is first
/// polled is kept) and answers a future that completes at the first of them.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

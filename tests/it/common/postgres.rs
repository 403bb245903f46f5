//! PostgreSQL for tests: the server at `TEST_DATABASE_URL`, or else a throwaway cluster started
//! from the machine's binaries (`PG_BIN` if set, else the newest `/usr/lib/postgresql/*/bin`, else
//! `pg_config --bindir`). Every test takes a database of its own from `new_database()`.
//!
//! Without binaries the tests say so on stderr and skip, unless `CI` is set: there it is a failure.
//! A local server never outlives the test binary: statics are never dropped, so a watchdog shell
//! polls this process and, once it is gone, stops the server and removes its directory.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::Mutex;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::process::Command;
use tokio::sync::OnceCell;

/// The superuser `initdb` creates; local clusters trust every connection from 127.0.0.1.
const USER: &str = "summit";

const SERVER_SETTINGS: &str = "
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
listen_addresses = '127.0.0.1'
";

/// Stops the server and removes its directory once the test process (`$1`) has gone; exits
/// quietly if the directory (`$2`) is removed first, as a dropped dedicated cluster does.
const WATCHDOG: &str = r#"
while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 0.5; done
[ -d "$2" ] || exit 0
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null) && kill -INT "$pid" 2>/dev/null
i=0
while [ -f "$2/data/postmaster.pid" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -f "$2/data/postmaster.pid" ] && kill -QUIT "$pid" 2>/dev/null
rm -rf "$2"
"#;

/// A PostgreSQL server for tests.
pub struct PgCluster {
    /// Where test databases are created from: the `postgres` database, or `TEST_DATABASE_URL`.
    admin_url: String,
    /// None for the server at `TEST_DATABASE_URL`.
    local: Option<LocalServer>,
}

/// Why no cluster: nothing to start (skip, or fail under CI), or starting it failed (always fail).
enum Unavailable {
    NoBinaries(String),
    Broken(String),
}

impl PgCluster {
    /// The process-wide shared cluster (started once, lazily), or the server at TEST_DATABASE_URL.
    /// None (after a loud message on stderr) when no PostgreSQL is available and CI is unset;
    /// panics when CI is set.
    pub async fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceCell<Result<PgCluster, Unavailable>> = OnceCell::const_new();
        let cluster = SHARED
            .get_or_init(|| async {
                match std::env::var("TEST_DATABASE_URL") {
                    Ok(url) if !url.is_empty() => PgCluster::external(url).await,
                    _ => PgCluster::local(false).await,
                }
            })
            .await;
        match cluster {
            Ok(cluster) => Some(cluster),
            Err(why) => unavailable(why),
        }
    }

    /// A cluster of its own (never TEST_DATABASE_URL), for tests that stop and restart the
    /// server; it is stopped and removed when dropped. Same None/panic rule as `shared`.
    pub async fn dedicated() -> Option<PgCluster> {
        match PgCluster::local(true).await {
            Ok(cluster) => Some(cluster),
            Err(why) => unavailable(&why),
        }
    }

    /// Creates a fresh, empty database with a unique name and returns its URL
    /// (`postgres://user@127.0.0.1:PORT/dbname` for local clusters).
    pub async fn new_database(&self) -> String {
        let name = format!("summit_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = execute(&self.admin_url, format!("CREATE DATABASE {name}")).await {
            panic!("creating test database {name}: {error}");
        }
        with_database(&self.admin_url, &name)
    }

    /// Stops the server (fast shutdown) and waits until it is down; only for dedicated clusters.
    pub async fn stop(&self) {
        let server = self.dedicated_server("stop");
        if let Err(error) = server.stop().await {
            panic!("stopping PostgreSQL: {error}");
        }
    }

    /// Starts it again on the same port and data directory and waits until it accepts
    /// connections.
    pub async fn start(&self) {
        let server = self.dedicated_server("start");
        if let Err(error) = server.start().await {
            panic!("starting PostgreSQL: {error}");
        }
    }

    fn dedicated_server(&self, action: &str) -> &LocalServer {
        match &self.local {
            Some(server) if server.dedicated => server,
            _ => panic!("only a PgCluster::dedicated() cluster may {action}"),
        }
    }

    async fn external(url: String) -> Result<PgCluster, Unavailable> {
        match execute(&url, "SELECT 1".to_owned()).await {
            Ok(_) => Ok(PgCluster {
                admin_url: url,
                local: None,
            }),
            Err(error) => Err(Unavailable::Broken(format!(
                "TEST_DATABASE_URL does not answer: {error}"
            ))),
        }
    }

    async fn local(dedicated: bool) -> Result<PgCluster, Unavailable> {
        let bin = server_binaries().map_err(Unavailable::NoBinaries)?;
        let server = LocalServer::create(bin, dedicated)
            .await
            .map_err(Unavailable::Broken)?;
        Ok(PgCluster {
            admin_url: format!("postgres://{USER}@127.0.0.1:{}/postgres", server.port),
            local: Some(server),
        })
    }
}

/// Convenience: a fresh database URL on the shared cluster, or None (skip) as above.
pub async fn test_database_url() -> Option<String> {
    Some(PgCluster::shared().await?.new_database().await)
}

/// One connection per call: tests run on runtimes of their own, so no pool is shared.
async fn execute(url: &str, sql: String) -> Result<(), String> {
    let mut connection = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    connection.close().await.map_err(|e| e.to_string())
}

/// A postmaster of our own in `root` (`data/`, `server.log` and the unix socket).
struct LocalServer {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    /// initdb and postgres refuse to run as root; then they run as the `postgres` user.
    as_postgres_user: bool,
    dedicated: bool,
    watchdog: Mutex<Option<Child>>,
}

impl LocalServer {
    async fn create(bin: PathBuf, dedicated: bool) -> Result<LocalServer, String> {
        let as_postgres_user = running_as_root();
        // /tmp rather than TMPDIR: the postgres user must reach it and socket paths must be short.
        let base = if as_postgres_user {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("summit-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        let watchdog = spawn_watchdog(&root)?;
        let mut server = LocalServer {
            bin,
            root,
            port: 0,
            as_postgres_user,
            dedicated,
            watchdog: Mutex::new(Some(watchdog)),
        };
        if as_postgres_user {
            checked(
                StdCommand::new("chown")
                    .arg("postgres:postgres")
                    .arg(&server.root)
                    .output(),
                "chown to the postgres user",
            )?;
        }
        let initdb = server
            .tool("initdb")
            .arg("-D")
            .arg(server.data_dir())
            .args([
                "--auth=trust",
                "-U",
                USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output();
        checked(initdb, "initdb")?;
        let settings = format!(
            "{SERVER_SETTINGS}unix_socket_directories = '{}'\n",
            server.root.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(server.data_dir().join("postgresql.conf"))
            .and_then(|mut conf| conf.write_all(settings.as_bytes()))
            .map_err(|e| format!("writing postgresql.conf: {e}"))?;
        // The port is free when picked but may be taken before postgres binds it: try again.
        let mut attempts = 0;
        loop {
            server.port = free_port()?;
            match server.start().await {
                Ok(()) => return Ok(server),
                Err(error) if attempts < 3 && error.contains("already in use") => attempts += 1,
                Err(error) => return Err(error),
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A command running one of the server binaries, as the postgres user when we are root.
    fn tool(&self, name: &str) -> StdCommand {
        let mut command = if self.as_postgres_user {
            let mut runuser = StdCommand::new("runuser");
            runuser
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(name));
            runuser
        } else {
            StdCommand::new(self.bin.join(name))
        };
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    /// `pg_ctl ACTION`, waiting (up to a minute) until it is done.
    fn pg_ctl(&self, options: &[&str], action: &str) -> StdCommand {
        let mut command = self.tool("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60"])
            .args(options)
            .arg(action);
        command
    }

    async fn start(&self) -> Result<(), String> {
        let log = self.root.join("server.log");
        let port = format!("-p {}", self.port);
        let start = self.pg_ctl(&["-l", &log.to_string_lossy(), "-o", &port], "start");
        let output = Command::from(start).output().await;
        checked(output, "pg_ctl start").map_err(|error| {
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            format!("{error}\nserver.log:\n{log}")
        })
    }

    async fn stop(&self) -> Result<(), String> {
        let stop = self.pg_ctl(&["-m", "fast"], "stop");
        checked(Command::from(stop).output().await, "pg_ctl stop")
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["-m", "fast"], "stop").output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(mut watchdog) = self.watchdog.lock().ok().and_then(|mut w| w.take()) {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// None after saying why on stderr, or a panic when the tests may not skip.
fn unavailable<T>(why: &Unavailable) -> Option<T> {
    match why {
        Unavailable::Broken(error) => panic!("PostgreSQL for tests: {error}"),
        Unavailable::NoBinaries(reason) if ci_is_set() => {
            panic!("PostgreSQL is required when CI is set: {reason}")
        }
        Unavailable::NoBinaries(reason) => {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            // Straight to stderr: libtest captures eprintln! and shows it only for failures.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {reason}; install PostgreSQL or set TEST_DATABASE_URL ***\n"
            );
            None
        }
    }
}

/// Whether the tests run under CI (`CI` set, and not "", "0" or "false"): there, a missing
/// external tool is a failure, not a skip. (Here, not in `common`, because benchmarks include
/// this file alone.)
pub fn ci_is_set() -> bool {
    std::env::var("CI").is_ok_and(|ci| !matches!(ci.as_str(), "" | "0" | "false"))
}

/// The directory with initdb, pg_ctl and postgres, or where we looked.
fn server_binaries() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    };
    if let Some(dir) = std::env::var_os("PG_BIN").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(format!("PG_BIN={} lacks a server binary", dir.display()));
    }
    let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    installed.sort();
    if let Some((_, dir)) = installed.pop() {
        return Ok(dir);
    }
    if let Ok(output) = StdCommand::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    Err(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PG_BIN, \
         /usr/lib/postgresql/*/bin or `pg_config --bindir`"
            .to_owned(),
    )
}

/// `url` with its database (path) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut result = format!("{}/{database}", &head[..authority_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

fn spawn_watchdog(root: &Path) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    StdCommand::new("sh")
        .args(["-c", WATCHDOG, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so the Ctrl-C that kills the tests does not kill the watchdog.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))
}

fn running_as_root() -> bool {
    StdCommand::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("picking a free port: {e}"))
}

fn checked(output: std::io::Result<Output>, what: &str) -> Result<(), String> {
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Err(format!("{what}: {error}")),
    }
}

//! CPU time of processes, from `/proc/<pid>/stat` (Linux; zero elsewhere): the load generator,
//! the server and the database around a run.

use std::sync::OnceLock;

/// The CPU-time fields of one process.
struct Stat {
    ppid: u32,
    /// utime + stime, in clock ticks.
    own: u64,
    /// cutime + cstime: children it has waited for.
    reaped: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(number(1)?).ok()?,
        own: number(11)? + number(12)?,
        reaped: number(13)? + number(14)?,
    })
}

fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds `pid` has used (user + system).
pub fn process_seconds(pid: u32) -> f64 {
    stat(pid).map_or(0.0, |s| s.own as f64 / ticks_per_second())
}

/// CPU seconds of `parent`, the children it has reaped, and its live children: for a
/// postmaster, every PostgreSQL process of the cluster.
pub fn family_seconds(parent: u32) -> f64 {
    let mut ticks = stat(parent).map_or(0, |s| s.own + s.reaped);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(child) = stat(pid).filter(|s| s.ppid == parent) {
            ticks += child.own;
        }
    }
    ticks as f64 / ticks_per_second()
}

/// The parent process id of `pid` (0 when unknown).
pub fn parent_of(pid: u32) -> u32 {
    stat(pid).map_or(0, |s| s.ppid)
}

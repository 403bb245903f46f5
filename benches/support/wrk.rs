//! `wrk` (Debian's package) as the lean external load generator: it costs less CPU per request
//! than the in-process hyper client, so throughput ratios measured with it flatter the slower
//! server less. Absent `wrk`, the phases that use it are skipped and say so.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Measured;
use super::cpu;

/// Whether `wrk` is on the PATH.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|out| !out.stdout.is_empty() || !out.stderr.is_empty())
}

/// Writes a Lua script that cycles through `requests` (a path each, and the body to send with
/// it, if any), with the bearer token when one is set. Each wrk thread starts at a different
/// offset.
pub fn script<'a>(
    dir: &Path,
    name: &str,
    method: &str,
    requests: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let mut lua = String::from("local requests = {\n");
    for (path, body) in requests {
        match body {
            Some(body) => lua.push_str(&format!("  {{{path:?}, {body:?}}},\n")),
            None => lua.push_str(&format!("  {{{path:?}}},\n")),
        }
    }
    lua.push_str("}\nlocal headers = {[\"Content-Type\"] = \"application/json\"}\n");
    if let Some(token) = super::BEARER.get() {
        lua.push_str(&format!(
            "headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ));
    }
    // Each thread formats every request once, at its start: per request wrk then only indexes
    // a table, and stays the lean generator it is here for.
    lua.push_str(&format!(
        "local i = 0\nlocal formatted = {{}}\n\
         setup = function(thread) thread:set(\"offset\", math.random(#requests)) end\n\
         init = function()\n  i = offset or 0\n  \
         for k, r in ipairs(requests) do formatted[k] = wrk.format({method:?}, r[1], headers, r[2]) end\n\
         end\n\
         request = function()\n  i = i + 1\n  return formatted[(i % #formatted) + 1]\nend\n"
    ));
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, lua).expect("write the wrk script");
    file.display().to_string()
}

/// Runs `wrk -t threads -c connections -d seconds --latency -s script` against `addr`, with the
/// CPU time of the process `server` over the run. `None` when wrk fails.
pub fn run(
    addr: SocketAddr,
    server: u32,
    script: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> Option<(Measured, f64)> {
    let before = cpu::process_seconds(server);
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["--latency", "-s", script])
        .arg(format!("http://{addr}/"))
        .output()
        .ok()?;
    let spent = cpu::process_seconds(server) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") {
        eprintln!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    // "  123456 requests in 10.00s, 270.31MB read" and "    99%    1.23ms".
    let requests: u64 = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let per_second: f64 = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(millis)
        .unwrap_or(0.0);
    let measured = Measured {
        per_second,
        requests,
        cpu_per_request: spent / requests.max(1) as f64,
    };
    Some((measured, p99))
}

/// `rounds` runs of `script` against the bare server and then summit-config (`(addr, pid)`
/// each): the (summit-config, bare) pairs of the rounds in which both runs succeeded.
pub fn rounds(
    summit: (SocketAddr, u32),
    bare: (SocketAddr, u32),
    script: &str,
    rounds: usize,
    duration: Duration,
) -> Vec<(Measured, Measured)> {
    let mut pairs = Vec::new();
    for _ in 0..rounds {
        let b = run(bare.0, bare.1, script, 2, 32, duration);
        let s = run(summit.0, summit.1, script, 2, 32, duration);
        if let (Some((s, _)), Some((b, _))) = (s, b) {
            pairs.push((s, b));
        }
    }
    pairs
}

/// wrk's "1.23ms" / "456.00us" / "1.02s" in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

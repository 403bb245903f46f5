//! `watch`: follows `GET /api/v1/watch` (SSE), one line per event; reconnects with the last
//! revision seen, so no event is lost or repeated.

use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{Failure, Result};
use super::output::{self, BOLD, Format, cell, paint, short, when};
use super::{Common, Context};

#[derive(Debug, Args)]
pub struct Watch {
    #[command(flatten)]
    pub common: Common,
    /// Only these configs (comma-separated ids).
    #[arg(long)]
    pub config: Option<String>,
    /// Only configs whose id starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Start after this revision (replaying what came since).
    #[arg(long)]
    pub from_revision: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

pub async fn run(ctx: &Context, args: Watch) -> Result<()> {
    let mut last = args.from_revision;
    let mut seen = 0;
    let mut retry = Duration::from_millis(500);
    loop {
        let mut query = Vec::new();
        query.extend(args.config.clone().map(|c| ("configId", c)));
        query.extend(args.prefix.clone().map(|p| ("prefix", p)));
        query.extend(last.map(|revision| ("fromRevision", revision.to_string())));
        let request = ctx
            .client
            .request(Method::GET, "/api/v1/watch")
            .query(&query);
        let mut response = match ctx.client.send(request).await {
            Ok(response) => response,
            // A refusal (bad filter, bad token) will not heal; an unreachable or unavailable
            // server may.
            Err(
                failure @ (Failure::Other(_)
                | Failure::Problem {
                    status: 502..=504, ..
                }),
            ) => {
                eprintln!("watch: {}; retrying in {retry:?}", failure.one_line());
                back_off(&mut retry).await;
                continue;
            }
            Err(failure) => return Err(failure),
        };
        let mut buffer = String::new();
        'stream: while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let event = match parse_frame(&frame)? {
                    Frame::KeepAlive => continue,
                    Frame::Event(event) => event,
                    Frame::Ended(code) => {
                        ended(&code)?;
                        // The store failed while the stream caught up: resume from here.
                        eprintln!(
                            "watch: the server ended the stream ({code}); reconnecting in {retry:?}"
                        );
                        back_off(&mut retry).await;
                        break 'stream;
                    }
                };
                // The backoff starts again once events flow.
                retry = Duration::from_millis(500);
                last = event["revision"].as_u64().or(last);
                print_event(ctx.format, &event);
                seen += 1;
                if args.count.is_some_and(|count| seen >= count) {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits `retry`, then doubles it (up to 30 s) for the next time.
async fn back_off(retry: &mut Duration) {
    tokio::time::sleep(*retry).await;
    *retry = (*retry * 2).min(Duration::from_secs(30));
}

/// One SSE frame.
enum Frame {
    Event(Value),
    KeepAlive,
    /// `event: error`, the stream's last: its error code.
    Ended(String),
}

fn parse_frame(frame: &str) -> Result<Frame> {
    let mut data = String::new();
    let mut error = false;
    for line in frame.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.trim_start());
        } else if line.trim() == "event: error" {
            error = true;
        }
    }
    if data.is_empty() {
        return Ok(Frame::KeepAlive);
    }
    let value: Value = serde_json::from_str(&data).map_err(Failure::other)?;
    if error {
        return Ok(Frame::Ended(cell(&value, "code")));
    }
    Ok(Frame::Event(value))
}

/// How a stream the server ended with `code` ends the command: a refusal with its exit code
/// (a revoked or expired token: 6); a store failure (`unavailable`, `internal`) may heal, so
/// the watch reconnects (`Ok`).
fn ended(code: &str) -> Result<()> {
    let status = match code {
        "unavailable" | "internal" => return Ok(()),
        "unauthenticated" => 401,
        "forbidden" => 403,
        "not_found" => 404,
        "invalid_input" => 400,
        _ => {
            return Err(Failure::other(format!(
                "the server ended the stream: {code}"
            )));
        }
    };
    Err(Failure::Problem {
        status,
        code: code.to_owned(),
        detail: "the server ended the stream".to_owned(),
        fields: Vec::new(),
    })
}

fn print_event(format: Format, event: &Value) {
    let line = match format {
        Format::Json => serde_json::to_string(event).unwrap_or_default(),
        Format::Yaml => format!(
            "---\n{}",
            serde_yaml_ng::to_string(event).unwrap_or_default()
        ),
        Format::Table => {
            let subject = event
                .get("configId")
                .or(event.get("flagKey"))
                .or(event.get("instance"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            let mut line = format!(
                "{} {} {} {} v{} {} {}",
                when(event, "at"),
                paint(BOLD, &format!("#{}", cell(event, "revision"))),
                cell(event, "kind"),
                output::printable(subject),
                cell(event, "version"),
                cell(event, "actor"),
                short(&cell(event, "checksum")),
            );
            if let Some(message) = event.get("message").and_then(Value::as_str) {
                line.push_str(&format!("  {}", output::printable(message)));
            }
            line
        }
    };
    output::emit(&format!("{}\n", line.trim_end()));
}

//! `diff <id> <from> <to>`: a unified diff of two versions' documents for people, the server's
//! RFC 6902 patch for scripts.

use clap::Args;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::client::{Result, segment};
use super::output::{self, CYAN, Format, GREEN, RED, paint};
use super::{Common, Context};
use crate::core::merge::merged;

#[derive(Debug, Args)]
pub struct Diff {
    #[command(flatten)]
    pub common: Common,
    pub id: String,
    pub from: u64,
    pub to: u64,
    /// Compare that environment's views (base with its override) instead of whole documents.
    #[arg(long)]
    pub env: Option<String>,
}

pub async fn diff(ctx: &Context, args: Diff) -> Result<()> {
    let id = segment(&args.id);
    if ctx.format != Format::Table {
        let mut query = vec![("from", args.from.to_string()), ("to", args.to.to_string())];
        query.extend(args.env.clone().map(|env| ("environment", env)));
        let patch = ctx
            .client
            .get(&format!("/api/v1/configs/{id}/diff"), &query)
            .await?;
        return output::show(ctx.format, &patch, |_| String::new());
    }
    let read = |n: u64| {
        let path = format!("/api/v1/configs/{id}/versions/{n}");
        async move { ctx.client.get(&path, &[]).await }
    };
    let (from, to) = (read(args.from).await?, read(args.to).await?);
    let view = |version: &Value| match &args.env {
        Some(env) => match version["overrides"].get(env.as_str()) {
            Some(change) => merged(&version["config"], change),
            None => version["config"].clone(),
        },
        None => super::configs::document(version),
    };
    output::emit(&unified(
        &view(&from),
        &view(&to),
        &format!("{}@{}", args.id, args.from),
        &format!("{}@{}", args.id, args.to),
    ));
    Ok(())
}

/// The two documents as pretty JSON (keys sorted), diffed line by line with three lines of
/// context, coloured the way `git diff` is.
pub fn unified(from: &Value, to: &Value, from_name: &str, to_name: &str) -> String {
    let (old, new) = (output::pretty_json(from), output::pretty_json(to));
    let diff = TextDiff::from_lines(&old, &new);
    let mut text = format!(
        "{}\n{}\n",
        paint(RED, &format!("--- {from_name}")),
        paint(GREEN, &format!("+++ {to_name}"))
    );
    if old == new {
        text.push_str("(no differences)\n");
        return text;
    }
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        text.push_str(&paint(CYAN, &hunk.header().to_string()));
        text.push('\n');
        for change in hunk.iter_changes() {
            let line = change.value().trim_end_matches('\n');
            let (sign, style) = match change.tag() {
                ChangeTag::Delete => ('-', Some(RED)),
                ChangeTag::Insert => ('+', Some(GREEN)),
                ChangeTag::Equal => (' ', None),
            };
            let line = format!("{sign}{line}");
            match style {
                Some(style) => text.push_str(&paint(style, &line)),
                None => text.push_str(&line),
            }
            text.push('\n');
        }
    }
    text
}

//! How a plan and its results are shown: lines and diffs for people, JSON for scripts.

use serde_json::{Value, json};

use super::{Action, Kind, Plan, to_value};
use crate::cli::bundle;
use crate::cli::client::Result;
use crate::cli::diff::unified;
use crate::cli::output::{self, BOLD, GREEN, RED, paint};
use crate::cli::remote::{self, Outcome};

/// The plan for people: one line per change, a diff under each update.
pub(super) fn render(plan: &Plan, dir: &str) -> String {
    if plan.changes.is_empty() {
        return format!(
            "No changes: the server matches {dir} ({} unchanged).\n",
            plan.unchanged
        );
    }
    let mut text = String::new();
    for change in &plan.changes {
        let name = format!("{} {}", change.kind.as_str(), change.id);
        let line = match change.action {
            Action::Create => paint(GREEN, &format!("+ {name} (create)")),
            Action::Update if change.kind == Kind::Schema => format!("~ {name} (replace)"),
            Action::Update => format!("~ {name} (version {} → new version)", change.base_version),
            Action::Delete => paint(
                RED,
                &format!("- {name} (delete version {})", change.base_version),
            ),
        };
        text.push_str(&paint(BOLD, &line));
        if let Some(request) = &change.awaiting {
            text.push_str(&format!("  awaiting approval: change request {request}"));
        }
        text.push('\n');
        if change.action != Action::Delete && change.awaiting.is_none() {
            let folder = if change.kind == Kind::Flag {
                bundle::FLAGS
            } else {
                bundle::CONFIGS
            };
            let to = format!("{dir}/{folder}/{}", change.id);
            text.push_str(&match change.action {
                Action::Create => added(&change.after, &to),
                _ => {
                    let from = match change.kind {
                        Kind::Schema => format!("{} schema (live)", change.id),
                        _ => format!("{}@{}", change.id, change.base_version),
                    };
                    unified(&change.before, &change.after, &from, &to)
                }
            });
        }
    }
    let count = |action| {
        plan.changes
            .iter()
            .filter(|c| c.awaiting.is_none() && c.action == action)
            .count()
    };
    let awaiting = plan.changes.iter().filter(|c| c.awaiting.is_some()).count();
    text.push_str(&format!(
        "Plan: {} to create, {} to change, {} to delete, {} awaiting approval, {} unchanged.\n",
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete),
        awaiting,
        plan.unchanged
    ));
    text
}

/// A new document: every line added.
fn added(document: &Value, to: &str) -> String {
    let mut text = paint(GREEN, &format!("+++ {to}"));
    text.push('\n');
    for line in output::pretty_json(document).lines() {
        text.push_str(&paint(GREEN, &format!("+{line}")));
        text.push('\n');
    }
    text
}

pub fn describe(outcome: &Result<Outcome>) -> String {
    match outcome {
        Ok(Outcome::Written(version)) => paint(GREEN, &format!("version {version} written")),
        Ok(Outcome::Pending(request)) => {
            format!("awaiting approval: change request {request} (summit-config approve {request})")
        }
        Ok(Outcome::Deleted) => paint(GREEN, "deleted"),
        Err(failure) => paint(RED, &format!("failed: {}", failure.one_line())),
    }
}

pub(super) fn summary(outcomes: &[(usize, Result<Outcome>)]) -> String {
    let count = |f: fn(&Result<Outcome>) -> bool| outcomes.iter().filter(|(_, o)| f(o)).count();
    format!(
        "Applied: {} written, {} deleted, {} awaiting approval, {} failed.\n",
        count(|o| matches!(o, Ok(Outcome::Written(_)))),
        count(|o| matches!(o, Ok(Outcome::Deleted))),
        count(|o| matches!(o, Ok(Outcome::Pending(_)))),
        count(Result::is_err),
    )
}

/// The plan and its results for scripts: each change with its RFC 6902 patch and its result.
pub(super) fn report(plan: &Plan, outcomes: &[(usize, Result<Outcome>)], dry_run: bool) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let mut value = to_value(change);
            if change.action != Action::Delete {
                value["patch"] = to_value(&json_patch::diff(&change.before, &change.after));
            }
            if let Some((_, outcome)) = outcomes.iter().find(|(index, _)| *index == i) {
                value["result"] = remote::outcome_json(outcome);
            }
            value
        })
        .collect();
    json!({
        "dryRun": dry_run,
        "changes": changes,
        "unchanged": plan.unchanged,
    })
}

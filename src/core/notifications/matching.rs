//! Which change events a webhook wants.

use super::model::Webhook;
use crate::core::events::ChangeEvent;
use crate::core::ids::Touched;

/// A kind pattern: the kind itself, a prefix ending in `.` or `.*` (`config.`, `flag.*`), or
/// `*` (every kind).
pub fn kind_matches(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    if prefix.ends_with('.') {
        return kind.starts_with(prefix);
    }
    pattern == kind
}

/// A pattern is a kind or a prefix of kinds: lowercase letters, `_` and `.`, optionally ending
/// in `*`.
pub fn valid_pattern(pattern: &str) -> bool {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    pattern == "*"
        || (!body.is_empty()
            && !body.starts_with('.')
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
            && (pattern.ends_with('*') == body.ends_with('.') || !pattern.ends_with('*')))
}

/// Whether `webhook` wants `event`: created before it, of a kind it subscribed to, and inside
/// each filter that applies to it (`configPrefix` to changes about a config, `flags` to flag
/// changes, `environments` to changes that touched environments).
pub fn wants(webhook: &Webhook, event: &ChangeEvent) -> bool {
    if event.revision <= webhook.since_revision {
        return false;
    }
    let kind = event.kind.as_str();
    if !webhook.events.iter().any(|p| kind_matches(p, kind)) {
        return false;
    }
    let filter = &webhook.filter;
    if let Some(prefix) = &filter.config_prefix
        && about_config(event)
        && !event.config_id.starts_with(prefix.as_str())
    {
        return false;
    }
    if !filter.flags.is_empty() && event.is_flag() && !filter.flags.contains(&event.config_id) {
        return false;
    }
    if !filter.environments.is_empty() && !event.environments.is_empty() {
        let every = event.environments.iter().any(|e| e == Touched::EVERY);
        let touched = every
            || filter
                .environments
                .iter()
                .any(|wanted| wanted == Touched::EVERY || event.environments.contains(wanted));
        if !touched {
            return false;
        }
    }
    true
}

/// Changes whose subject is a config id.
fn about_config(event: &ChangeEvent) -> bool {
    let kind = event.kind.as_str();
    kind.starts_with("config.") || kind.starts_with("schema.") || event.kind.is_deployment()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(kind_matches("*", "config.updated"));
        assert!(kind_matches("config.", "config.updated"));
        assert!(kind_matches("config.*", "config.deleted"));
        assert!(kind_matches("config.updated", "config.updated"));
        assert!(!kind_matches("config.updated", "config.deleted"));
        assert!(!kind_matches("config", "config.updated"));
        assert!(!kind_matches("flag.*", "config.updated"));
        for good in [
            "*",
            "config.",
            "config.*",
            "flag.updated",
            "change_request.applied",
        ] {
            assert!(valid_pattern(good), "{good}");
        }
        for bad in ["", ".", "Config.updated", "config*", "a b", ".x"] {
            assert!(!valid_pattern(bad), "{bad}");
        }
    }
}

//! Where each versioned document kind keeps its heads and versions: the same tables in every SQL
//! backend. A backend writes each statement once, as `queries/document_*.sql`, with `{heads}`,
//! `{versions}`, `{key}`, `{body}` and `{schema_version}` where a kind's names go, and fills it
//! in for every kind at first use.

use std::sync::OnceLock;

use crate::core::versioned::DocumentKind;

pub(crate) struct DocumentTables {
    /// One row per document: its latest version and whether it is deleted.
    heads: &'static str,
    /// One row per version.
    versions: &'static str,
    /// The id column, in both tables.
    key: &'static str,
    /// The versions' JSON document column.
    body: &'static str,
    /// The head's schema version; kinds without a schema read as 0.
    schema_version: &'static str,
}

const NO_SCHEMA: &str = "CAST(0 AS BIGINT)";

const CONFIGS: DocumentTables = DocumentTables {
    heads: "configs",
    versions: "config_versions",
    key: "config_id",
    body: "document",
    schema_version: "schema_version",
};

const FLAGS: DocumentTables = DocumentTables {
    heads: "flags",
    versions: "flag_versions",
    key: "flag_key",
    body: "definition",
    schema_version: NO_SCHEMA,
};

const SECRETS: DocumentTables = DocumentTables {
    heads: "secrets",
    versions: "secret_versions",
    key: "name",
    body: "document",
    schema_version: NO_SCHEMA,
};

const STRATEGIES: DocumentTables = DocumentTables {
    heads: "strategies",
    versions: "strategy_versions",
    key: "name",
    body: "document",
    schema_version: NO_SCHEMA,
};

pub(crate) fn document_tables(kind: DocumentKind) -> &'static DocumentTables {
    match kind {
        DocumentKind::Config => &CONFIGS,
        DocumentKind::Flag => &FLAGS,
        DocumentKind::Secret => &SECRETS,
        DocumentKind::Strategy => &STRATEGIES,
    }
}

/// One `T` for each document kind, each built at its first use (a backend's statements).
pub(crate) struct PerKind<T>([OnceLock<T>; 4]);

impl<T> PerKind<T> {
    pub(crate) const fn new() -> Self {
        PerKind([const { OnceLock::new() }; 4])
    }

    pub(crate) fn get(&self, kind: DocumentKind, build: impl FnOnce(DocumentKind) -> T) -> &T {
        let slot = match kind {
            DocumentKind::Config => 0,
            DocumentKind::Flag => 1,
            DocumentKind::Secret => 2,
            DocumentKind::Strategy => 3,
        };
        self.0[slot].get_or_init(|| build(kind))
    }
}

impl DocumentTables {
    /// The statement `template` for this kind, kept for the life of the process (a backend
    /// builds each kind's statements once).
    pub(crate) fn statement(&self, template: &str) -> &'static str {
        self.fill(template).leak()
    }

    /// The statement `template` for this kind; the names are constants, never input.
    fn fill(&self, template: &str) -> String {
        template
            .replace("{heads}", self.heads)
            .replace("{versions}", self.versions)
            .replace("{key}", self.key)
            .replace("{body}", self.body)
            .replace("{schema_version}", self.schema_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_leaves_no_placeholder_for_any_kind() {
        let template = "SELECT {key}, {body}, {schema_version} FROM {heads} JOIN {versions}";
        for kind in [
            DocumentKind::Config,
            DocumentKind::Flag,
            DocumentKind::Secret,
            DocumentKind::Strategy,
        ] {
            let filled = document_tables(kind).fill(template);
            assert!(!filled.contains('{'), "{filled}");
        }
        assert_eq!(
            document_tables(DocumentKind::Flag).fill(template),
            "SELECT flag_key, definition, CAST(0 AS BIGINT) FROM flags JOIN flag_versions"
        );
    }

    #[test]
    fn per_kind_builds_each_kind_once() {
        let built = std::cell::Cell::new(0);
        let per_kind: PerKind<DocumentKind> = PerKind::new();
        for _ in 0..3 {
            for kind in [DocumentKind::Config, DocumentKind::Flag] {
                let got = per_kind.get(kind, |kind| {
                    built.set(built.get() + 1);
                    kind
                });
                assert_eq!(*got, kind);
            }
        }
        assert_eq!(built.get(), 2);
    }
}

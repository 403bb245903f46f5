-- Deployment strategies: named, versioned documents. Heads: one row per name that ever existed.
CREATE TABLE strategies (
    name           TEXT    PRIMARY KEY NOT NULL,
    latest_version INTEGER NOT NULL CHECK (latest_version > 0),
    deleted        INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE strategy_versions (
    name        TEXT    NOT NULL REFERENCES strategies (name),
    version     INTEGER NOT NULL CHECK (version > 0),
    document    TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    message     TEXT,
    created_at  TEXT    NOT NULL,
    rollback_of INTEGER,
    PRIMARY KEY (name, version)
) STRICT;

-- From here on `changes.config_id` and `audit.config_id` also hold strategy names, when
-- `changes.kind` / `audit.action` starts with `strategy.`.

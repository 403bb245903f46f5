-- Config heads: one row per config id that ever existed.
CREATE TABLE configs (
    config_id      TEXT    PRIMARY KEY NOT NULL,
    latest_version INTEGER NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    schema_version INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Immutable versions; `document` is {config, overrides, canary, abTest} as JSON text.
CREATE TABLE config_versions (
    config_id   TEXT    NOT NULL REFERENCES configs (config_id),
    version     INTEGER NOT NULL CHECK (version > 0),
    document    TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    message     TEXT,
    created_at  TEXT    NOT NULL,
    rollback_of INTEGER,
    PRIMARY KEY (config_id, version)
) STRICT;

CREATE TABLE schemas (
    config_id  TEXT    NOT NULL REFERENCES configs (config_id),
    version    INTEGER NOT NULL CHECK (version > 0),
    schema     TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    message    TEXT,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (config_id, version)
) STRICT;

-- The global change log; `revision` is the one counter every change increments.
CREATE TABLE changes (
    revision  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT    NOT NULL,
    config_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    checksum  TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    message   TEXT,
    at        TEXT    NOT NULL
) STRICT;

-- Append-only: no API updates or deletes these rows, and triggers refuse it.
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    revision     INTEGER NOT NULL REFERENCES changes (revision),
    at           TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    config_id    TEXT    NOT NULL,
    version      INTEGER,
    environments TEXT    NOT NULL,
    message      TEXT
) STRICT;
CREATE INDEX audit_by_config ON audit (config_id, id);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;

CREATE TABLE applied_states (
    config_id   TEXT    NOT NULL REFERENCES configs (config_id),
    environment TEXT    NOT NULL,
    instance_id TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    checksum    TEXT    NOT NULL,
    reported_at TEXT    NOT NULL,
    PRIMARY KEY (config_id, environment, instance_id)
) STRICT;

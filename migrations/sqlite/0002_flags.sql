-- Flag heads: one row per flag key that ever existed. Keys are case-sensitive and sort byte-wise
-- (SQLite's default BINARY collation), as every backend orders them.
CREATE TABLE flags (
    flag_key       TEXT    PRIMARY KEY NOT NULL,
    latest_version INTEGER NOT NULL CHECK (latest_version > 0),
    deleted        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Immutable versions; `definition` is the flag definition as JSON text.
CREATE TABLE flag_versions (
    flag_key    TEXT    NOT NULL REFERENCES flags (flag_key),
    version     INTEGER NOT NULL CHECK (version > 0),
    definition  TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    message     TEXT,
    created_at  TEXT    NOT NULL,
    rollback_of INTEGER,
    PRIMARY KEY (flag_key, version)
) STRICT;

-- From here on `changes.config_id` and `audit.config_id` hold the subject of the change: the
-- config id, or the flag key when `changes.kind` / `audit.action` starts with `flag.`.

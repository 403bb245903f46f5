-- The built-in secret store. Heads: one row per secret name that ever existed.
CREATE TABLE secrets (
    name           TEXT    PRIMARY KEY NOT NULL,
    latest_version INTEGER NOT NULL CHECK (latest_version > 0),
    deleted        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Immutable versions. `document` holds only ciphertext: the value sealed under a per-version
-- data key, and that key sealed under the key-encryption key named by its id (see
-- docs/secrets.md). No value is ever stored in clear.
CREATE TABLE secret_versions (
    name        TEXT    NOT NULL REFERENCES secrets (name),
    version     INTEGER NOT NULL CHECK (version > 0),
    document    TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    message     TEXT,
    created_at  TEXT    NOT NULL,
    rollback_of INTEGER,
    PRIMARY KEY (name, version)
) STRICT;

-- From here on `changes.config_id` and `audit.config_id` also hold secret names, when
-- `changes.kind` / `audit.action` starts with `secret.`.

-- The built-in secret store. Heads: one row per secret name that ever existed.
CREATE TABLE secrets (
    name           TEXT COLLATE "C" PRIMARY KEY
                   CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    latest_version BIGINT  NOT NULL CHECK (latest_version > 0),
    deleted        BOOLEAN NOT NULL DEFAULT FALSE
);

-- Immutable versions. `document` holds only ciphertext: the value sealed under a per-version
-- data key, and that key sealed under the key-encryption key named by its id (see
-- docs/secrets.md). No value is ever stored in clear.
CREATE TABLE secret_versions (
    name        TEXT COLLATE "C" NOT NULL REFERENCES secrets (name),
    version     BIGINT      NOT NULL CHECK (version > 0),
    document    JSON        NOT NULL,
    checksum    TEXT        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    actor       TEXT        NOT NULL,
    message     TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    rollback_of BIGINT,
    PRIMARY KEY (name, version)
);

COMMENT ON COLUMN changes.config_id IS
    'The subject: the config id, the flag key (kind flag.*) or the secret name (kind secret.*)';
COMMENT ON COLUMN audit.config_id IS
    'The subject: the config id, the flag key (action flag.*) or the secret name (secret.*)';

-- Flag heads: one row per flag key that ever existed. Keys are case-sensitive (`newCheckout`)
-- and sort byte-wise (COLLATE "C"), as every backend and the in-memory flag set order them.
CREATE TABLE flags (
    flag_key       TEXT COLLATE "C" PRIMARY KEY
                   CHECK (flag_key ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    latest_version BIGINT  NOT NULL CHECK (latest_version > 0),
    deleted        BOOLEAN NOT NULL DEFAULT FALSE
);

-- Immutable versions; `definition` is the flag definition exactly as written.
CREATE TABLE flag_versions (
    flag_key    TEXT COLLATE "C" NOT NULL REFERENCES flags (flag_key),
    version     BIGINT      NOT NULL CHECK (version > 0),
    definition  JSON        NOT NULL,
    checksum    TEXT        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    actor       TEXT        NOT NULL,
    message     TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    rollback_of BIGINT,
    PRIMARY KEY (flag_key, version),
    FOREIGN KEY (flag_key, rollback_of) REFERENCES flag_versions (flag_key, version)
);

-- A flag change records its flag key where a config change records the config id, so these
-- columns can no longer reference configs.
ALTER TABLE changes DROP CONSTRAINT IF EXISTS changes_config_id_fkey;
ALTER TABLE audit DROP CONSTRAINT IF EXISTS audit_config_id_fkey;
COMMENT ON COLUMN changes.config_id IS
    'The subject: the config id, or the flag key when kind starts with ''flag.''';
COMMENT ON COLUMN audit.config_id IS
    'The subject: the config id, or the flag key when action starts with ''flag.''';

-- Deployment strategies: named, versioned documents. Heads: one row per name that ever existed.
CREATE TABLE strategies (
    name           TEXT COLLATE "C" PRIMARY KEY
                   CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    latest_version BIGINT  NOT NULL CHECK (latest_version > 0),
    deleted        BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE strategy_versions (
    name        TEXT COLLATE "C" NOT NULL REFERENCES strategies (name),
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
    'The subject: the config id, the flag key (kind flag.*), the secret name (kind secret.*), service/instance (kind instance.*) or the strategy name (kind strategy.*)';
COMMENT ON COLUMN audit.config_id IS
    'The subject: the config id, the flag key (action flag.*), the secret name (secret.*), service/instance (instance.*) or the strategy name (strategy.*)';

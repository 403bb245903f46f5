-- Staged deployments: one row per deployment (the deployment as JSON beside the columns
-- listings filter by), its log, and the version each environment that requires deployments
-- releases. Times in microseconds since the epoch.
CREATE TABLE deployments (
    id          TEXT    PRIMARY KEY,
    config_id   TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    active      INTEGER NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    created_us  INTEGER NOT NULL,
    document    TEXT    NOT NULL
) STRICT;

-- At most one active deployment per config and environment.
CREATE UNIQUE INDEX deployments_one_active ON deployments (config_id, environment) WHERE active = 1;
CREATE INDEX deployments_by_created ON deployments (created_us, id);

CREATE TABLE deployment_log (
    deployment_id TEXT    NOT NULL REFERENCES deployments (id),
    seq           INTEGER NOT NULL,
    entry         TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, seq)
) STRICT;

CREATE TABLE releases (
    config_id     TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version > 0),
    deployment_id TEXT,
    released_us   INTEGER NOT NULL,
    PRIMARY KEY (config_id, environment)
) STRICT;

-- From here on `changes.kind` / `audit.action` may be `deployment.*`, about the config
-- `config_id` names.

-- What an instance last measured of itself (`{errorRate?, latencyP99Ms?}` as JSON), from its
-- heartbeats; deployment gates judge it.
ALTER TABLE registry_instances ADD COLUMN metrics TEXT;

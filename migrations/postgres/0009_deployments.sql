-- Staged deployments: one row per deployment (the deployment as JSON beside the columns
-- listings filter by), its log, and the version each environment that requires deployments
-- releases. Times in microseconds since the epoch.
CREATE TABLE deployments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    config_id   TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL,
    active      BOOLEAN NOT NULL,
    seq         BIGINT  NOT NULL CHECK (seq > 0),
    created_us  BIGINT  NOT NULL,
    document    TEXT    NOT NULL
);

-- At most one active deployment per config and environment.
CREATE UNIQUE INDEX deployments_one_active ON deployments (config_id, environment) WHERE active;
CREATE INDEX deployments_by_created ON deployments (created_us, id);

CREATE TABLE deployment_log (
    deployment_id TEXT COLLATE "C" NOT NULL REFERENCES deployments (id),
    seq           BIGINT NOT NULL,
    entry         TEXT   NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

CREATE TABLE releases (
    config_id     TEXT COLLATE "C" NOT NULL,
    environment   TEXT COLLATE "C" NOT NULL,
    version       BIGINT NOT NULL CHECK (version > 0),
    deployment_id TEXT,
    released_us   BIGINT NOT NULL,
    PRIMARY KEY (config_id, environment)
);

COMMENT ON COLUMN changes.kind IS
    'What changed; deployment.* changes are about the config config_id names';

-- What an instance last measured of itself (`{errorRate?, latencyP99Ms?}` as JSON), from its
-- heartbeats; deployment gates judge it.
ALTER TABLE registry_instances ADD COLUMN metrics TEXT;

-- The service registry: one row per registered instance. `document` is the instance as JSON
-- (registration, status, maintenance); the columns beside it are what heartbeats and expiry
-- read and write without decoding it. Times in milliseconds since the epoch.
CREATE TABLE registry_instances (
    service           TEXT COLLATE "C" NOT NULL
                      CHECK (service ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
    instance_id       TEXT COLLATE "C" NOT NULL
                      CHECK (instance_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
    version           BIGINT  NOT NULL CHECK (version > 0),
    document          JSON    NOT NULL,
    registered_ms     BIGINT  NOT NULL,
    last_heartbeat_ms BIGINT  NOT NULL,
    ttl_ms            BIGINT  NOT NULL CHECK (ttl_ms > 0),
    remove_after_ms   BIGINT  NOT NULL CHECK (remove_after_ms >= ttl_ms),
    expired           BOOLEAN NOT NULL DEFAULT FALSE,
    applied           JSON    NOT NULL DEFAULT '{}',
    output            TEXT,
    PRIMARY KEY (service, instance_id)
);

COMMENT ON COLUMN changes.config_id IS
    'The subject: the config id, the flag key (kind flag.*), the secret name (kind secret.*) or service/instance (kind instance.*)';
COMMENT ON COLUMN audit.config_id IS
    'The subject: the config id, the flag key (action flag.*), the secret name (secret.*) or service/instance (instance.*)';

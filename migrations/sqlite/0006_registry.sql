-- The service registry: one row per registered instance. `document` is the instance as JSON
-- (registration, status, maintenance); the columns beside it are what heartbeats and expiry
-- read and write without decoding it. Times in milliseconds since the epoch.
CREATE TABLE registry_instances (
    service           TEXT    NOT NULL,
    instance_id       TEXT    NOT NULL,
    version           INTEGER NOT NULL CHECK (version > 0),
    document          TEXT    NOT NULL,
    registered_ms     INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL,
    ttl_ms            INTEGER NOT NULL CHECK (ttl_ms > 0),
    remove_after_ms   INTEGER NOT NULL CHECK (remove_after_ms >= ttl_ms),
    expired           INTEGER NOT NULL DEFAULT 0,
    applied           TEXT    NOT NULL DEFAULT '{}',
    output            TEXT,
    PRIMARY KEY (service, instance_id)
) STRICT;

-- From here on `changes.config_id` and `audit.config_id` also hold `service/instance`, when
-- `changes.kind` / `audit.action` starts with `instance.`.

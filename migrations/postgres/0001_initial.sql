-- Config heads: one row per config id that ever existed (or has a schema).
CREATE TABLE configs (
    config_id      TEXT    PRIMARY KEY CHECK (config_id ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
    latest_version BIGINT  NOT NULL DEFAULT 0 CHECK (latest_version >= 0),
    deleted        BOOLEAN NOT NULL DEFAULT FALSE,
    schema_version BIGINT  NOT NULL DEFAULT 0 CHECK (schema_version >= 0)
);

-- Immutable versions; `document` is {config, overrides, canary, abTest} exactly as written.
CREATE TABLE config_versions (
    config_id   TEXT        NOT NULL REFERENCES configs (config_id),
    version     BIGINT      NOT NULL CHECK (version > 0),
    document    JSON        NOT NULL,
    checksum    TEXT        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    actor       TEXT        NOT NULL,
    message     TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    rollback_of BIGINT,
    PRIMARY KEY (config_id, version),
    FOREIGN KEY (config_id, rollback_of) REFERENCES config_versions (config_id, version)
);

CREATE TABLE schemas (
    config_id  TEXT        NOT NULL REFERENCES configs (config_id),
    version    BIGINT      NOT NULL CHECK (version > 0),
    schema     JSON        NOT NULL,
    checksum   TEXT        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    actor      TEXT        NOT NULL,
    message    TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (config_id, version)
);

-- The global change log. Writers serialise on an advisory lock, so revisions commit in order
-- and a reader that sees revision N has seen every revision below it.
CREATE TABLE changes (
    revision  BIGSERIAL   PRIMARY KEY,
    kind      TEXT        NOT NULL,
    config_id TEXT        NOT NULL REFERENCES configs (config_id),
    version   BIGINT      NOT NULL,
    checksum  TEXT        NOT NULL,
    actor     TEXT        NOT NULL,
    message   TEXT,
    at        TIMESTAMPTZ NOT NULL
);

-- Append-only: no API updates or deletes these rows, and a trigger refuses it.
CREATE TABLE audit (
    id           BIGSERIAL   PRIMARY KEY,
    revision     BIGINT      NOT NULL UNIQUE REFERENCES changes (revision),
    at           TIMESTAMPTZ NOT NULL,
    actor        TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    config_id    TEXT        NOT NULL REFERENCES configs (config_id),
    version      BIGINT,
    environments JSON        NOT NULL,
    message      TEXT
);
CREATE INDEX audit_by_config ON audit (config_id, id);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();

CREATE TABLE applied_states (
    config_id   TEXT        NOT NULL REFERENCES configs (config_id),
    environment TEXT        NOT NULL,
    instance_id TEXT        NOT NULL,
    version     BIGINT      NOT NULL CHECK (version > 0),
    checksum    TEXT        NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (config_id, environment, instance_id)
);

-- Webhooks, the fan-out cursors over the change log (the outbox), and deliveries (a delivery's
-- body is its change event, read from `changes` by revision).
CREATE TABLE webhooks (
    id              TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    events          TEXT    NOT NULL, -- JSON array of kinds and prefixes
    filter          TEXT    NOT NULL, -- JSON object
    description     TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    failing_since   TEXT,
    seq             INTEGER NOT NULL,
    since_revision  INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    secrets         TEXT    NOT NULL  -- JSON array of sealed signing secrets
);

-- How far each sink (`webhooks`, `kafka`) has read the change log.
CREATE TABLE notification_cursors (
    sink     TEXT    PRIMARY KEY,
    revision INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL,
    revision        INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    status          TEXT    NOT NULL, -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    latency_ms      INTEGER,
    created_at      TEXT    NOT NULL,
    delivered_at    TEXT,
    UNIQUE (webhook_id, revision)
);
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (status, webhook_id, subject, id);

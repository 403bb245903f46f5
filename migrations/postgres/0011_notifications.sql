-- Webhooks, the fan-out cursors over the change log (the outbox), and deliveries (a delivery's
-- body is its change event, read from `changes` by revision).
CREATE TABLE webhooks (
    id              TEXT        PRIMARY KEY,
    url             TEXT        NOT NULL,
    events          JSONB       NOT NULL,
    filter          JSONB       NOT NULL,
    description     TEXT        NOT NULL,
    enabled         BOOLEAN     NOT NULL,
    disabled_reason TEXT,
    failing_since   TIMESTAMPTZ,
    seq             BIGINT      NOT NULL,
    since_revision  BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    secrets         JSONB       NOT NULL
);

-- How far each sink (`webhooks`, `kafka`) has read the change log.
CREATE TABLE notification_cursors (
    sink     TEXT   PRIMARY KEY,
    revision BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL   PRIMARY KEY,
    webhook_id      TEXT        NOT NULL,
    revision        BIGINT      NOT NULL,
    kind            TEXT        NOT NULL,
    subject         TEXT        NOT NULL,
    status          TEXT        NOT NULL, -- pending | delivered | failed
    attempts        INTEGER     NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    latency_ms      BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    UNIQUE (webhook_id, revision)
);
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (status, webhook_id, subject, id);

-- The `metadata.actor` a client named when it differs from the authenticated actor.
ALTER TABLE audit ADD COLUMN on_behalf_of TEXT;

-- From here on a `token.*` change or audit record names a token id as its subject.

-- API tokens. Only the SHA-256 of a token's text is stored; `roles` and `scopes` are JSON text.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
) STRICT;
CREATE INDEX api_tokens_by_creation ON api_tokens (created_at, id);

-- Attempts refused for lack of a right. Not changes (no revision); append-only like the audit.
CREATE TABLE access_denials (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    operation TEXT NOT NULL,
    resource  TEXT,
    reason    TEXT NOT NULL
) STRICT;

CREATE TRIGGER access_denials_no_update BEFORE UPDATE ON access_denials
BEGIN SELECT RAISE(ABORT, 'access denials are append-only'); END;
CREATE TRIGGER access_denials_no_delete BEFORE DELETE ON access_denials
BEGIN SELECT RAISE(ABORT, 'access denials are append-only'); END;

-- Changes waiting for approval. `operation`, `environments` and `approvals` are JSON text.
CREATE TABLE change_requests (
    id                 TEXT    PRIMARY KEY NOT NULL,
    config_id          TEXT    NOT NULL,
    operation          TEXT    NOT NULL,
    base_version       INTEGER NOT NULL CHECK (base_version >= 0),
    environments       TEXT    NOT NULL,
    required_approvals INTEGER NOT NULL CHECK (required_approvals >= 0),
    approvals          TEXT    NOT NULL,
    status             TEXT    NOT NULL
                       CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled', 'applied')),
    requested_by       TEXT    NOT NULL,
    on_behalf_of       TEXT,
    message            TEXT,
    reason             TEXT,
    applied_version    INTEGER,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
) STRICT;
CREATE INDEX change_requests_by_creation ON change_requests (created_at, id);

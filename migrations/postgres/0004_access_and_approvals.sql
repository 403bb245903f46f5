-- The `metadata.actor` a client named when it differs from the authenticated actor.
ALTER TABLE audit ADD COLUMN on_behalf_of TEXT;

COMMENT ON COLUMN changes.config_id IS
    'The subject: the config id, the flag key when kind starts with ''flag.'', the token id when it starts with ''token.''';
COMMENT ON COLUMN audit.config_id IS
    'The subject: the config id, the flag key when action starts with ''flag.'', the token id when it starts with ''token.''';

-- API tokens. Only the SHA-256 of a token's text is stored.
CREATE TABLE api_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT        NOT NULL,
    roles      JSONB       NOT NULL,
    scopes     JSONB       NOT NULL,
    hash       TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT        NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_creation ON api_tokens (created_at, id);

-- Attempts refused for lack of a right. Not changes (no revision); append-only like the audit.
CREATE TABLE access_denials (
    id        BIGSERIAL   PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT        NOT NULL,
    operation TEXT        NOT NULL,
    resource  TEXT,
    reason    TEXT        NOT NULL
);

CREATE FUNCTION refuse_access_denial_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access denials are append-only';
END;
$$;
CREATE TRIGGER access_denials_append_only BEFORE UPDATE OR DELETE ON access_denials
    FOR EACH ROW EXECUTE FUNCTION refuse_access_denial_change();

-- Changes waiting for approval. `operation` is kept exactly as written (like documents).
CREATE TABLE change_requests (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    config_id          TEXT        NOT NULL,
    operation          JSON        NOT NULL,
    base_version       BIGINT      NOT NULL CHECK (base_version >= 0),
    environments       JSONB       NOT NULL,
    required_approvals BIGINT      NOT NULL CHECK (required_approvals >= 0),
    approvals          JSONB       NOT NULL,
    status             TEXT        NOT NULL
                       CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled', 'applied')),
    requested_by       TEXT        NOT NULL,
    on_behalf_of       TEXT,
    message            TEXT,
    reason             TEXT,
    applied_version    BIGINT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX change_requests_by_creation ON change_requests (created_at, id);

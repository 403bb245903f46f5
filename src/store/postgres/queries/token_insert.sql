INSERT INTO api_tokens
    (id, name, roles, scopes, hash, created_at, created_by, expires_at, revoked_at)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING

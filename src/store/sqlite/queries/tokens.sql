SELECT id, name, roles, scopes, hash, created_at, created_by, expires_at, revoked_at
FROM api_tokens ORDER BY created_at, id

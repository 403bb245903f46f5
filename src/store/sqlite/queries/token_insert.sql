INSERT INTO api_tokens
  (id, name, roles, scopes, hash, created_at, created_by, expires_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING

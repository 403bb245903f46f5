SELECT name AS id, version, document AS body, checksum, actor, message, created_at, rollback_of
FROM secret_versions WHERE name = ? AND version = ?

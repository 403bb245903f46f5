SELECT name AS id, version, document AS body, checksum, actor, message, created_at, rollback_of
FROM strategy_versions WHERE name = ? AND version = ?

SELECT flag_key AS id, version, definition AS body, checksum, actor, message, created_at, rollback_of
FROM flag_versions WHERE flag_key = ? AND version < ?
ORDER BY version DESC LIMIT ?

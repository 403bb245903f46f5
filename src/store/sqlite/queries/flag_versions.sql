SELECT flag_key, version, definition, checksum, actor, message, created_at, rollback_of
FROM flag_versions WHERE flag_key = ? AND version < ?
ORDER BY version DESC LIMIT ?

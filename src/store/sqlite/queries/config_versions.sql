SELECT config_id AS id, version, document AS body, checksum, actor, message, created_at, rollback_of
FROM config_versions WHERE config_id = ? AND version < ?
ORDER BY version DESC LIMIT ?

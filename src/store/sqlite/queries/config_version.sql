SELECT config_id, version, document, checksum, actor, message, created_at, rollback_of
FROM config_versions WHERE config_id = ? AND version = ?

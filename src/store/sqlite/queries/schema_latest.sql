SELECT config_id, version, schema, checksum, actor, message, created_at
FROM schemas WHERE config_id = ? ORDER BY version DESC LIMIT 1

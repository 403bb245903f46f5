INSERT INTO schemas (config_id, version, schema, checksum, actor, message, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)

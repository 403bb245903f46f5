SELECT config_id, version, schema::text AS schema, checksum, actor, message, created_at
FROM schemas WHERE config_id = $1 ORDER BY version DESC LIMIT 1

SELECT config_id AS id, version, document::text AS body, checksum, actor, message, created_at,
       rollback_of
FROM config_versions WHERE config_id = $1 AND version < $2
ORDER BY version DESC LIMIT $3

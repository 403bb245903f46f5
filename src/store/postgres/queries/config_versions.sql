SELECT config_id, version, document::text AS document, checksum, actor, message, created_at,
       rollback_of
FROM config_versions WHERE config_id = $1 AND version < $2
ORDER BY version DESC LIMIT $3

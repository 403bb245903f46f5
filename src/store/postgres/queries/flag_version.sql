SELECT flag_key AS id, version, definition::text AS body, checksum, actor, message, created_at,
       rollback_of
FROM flag_versions WHERE flag_key = $1 AND version = $2

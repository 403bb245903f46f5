SELECT flag_key, version, definition::text AS definition, checksum, actor, message, created_at,
       rollback_of
FROM flag_versions WHERE flag_key = $1 AND version = $2

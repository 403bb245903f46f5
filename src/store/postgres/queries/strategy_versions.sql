SELECT name AS id, version, document::text AS body, checksum, actor, message, created_at,
       rollback_of
FROM strategy_versions WHERE name = $1 AND version < $2
ORDER BY version DESC LIMIT $3

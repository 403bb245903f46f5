SELECT {key} AS id, version, {body}::text AS body, checksum, actor, message, created_at,
       rollback_of
FROM {versions} WHERE {key} = $1 AND version < $2
ORDER BY version DESC LIMIT $3

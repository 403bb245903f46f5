SELECT {key} AS id, version, {body} AS body, checksum, actor, message, created_at, rollback_of
FROM {versions} WHERE {key} = ? AND version = ?

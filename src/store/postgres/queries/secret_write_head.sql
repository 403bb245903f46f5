SELECT latest_version, deleted, 0::bigint AS schema_version FROM secrets WHERE name = $1

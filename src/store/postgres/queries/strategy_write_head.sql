SELECT latest_version, deleted, 0::bigint AS schema_version FROM strategies WHERE name = $1

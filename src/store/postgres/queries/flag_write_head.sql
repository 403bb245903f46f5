SELECT latest_version, deleted, 0::bigint AS schema_version FROM flags WHERE flag_key = $1

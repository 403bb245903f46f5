SELECT latest_version, deleted, {schema_version} AS schema_version FROM {heads} WHERE {key} = $1

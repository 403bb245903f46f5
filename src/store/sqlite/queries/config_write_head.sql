SELECT latest_version, deleted, schema_version FROM configs WHERE config_id = ?

INSERT INTO configs (config_id, latest_version, schema_version) VALUES (?, 0, ?)
ON CONFLICT (config_id) DO UPDATE SET schema_version = excluded.schema_version

-- The config's head row (created with no version if need be) and the new schema version.
WITH head AS (
    INSERT INTO configs (config_id, latest_version, schema_version) VALUES ($1, 0, $2)
    ON CONFLICT (config_id) DO UPDATE SET schema_version = excluded.schema_version
)
INSERT INTO schemas (config_id, version, schema, checksum, actor, message, created_at)
VALUES ($1, $2, $3::json, $4, $5, $6, $7)

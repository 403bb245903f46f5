-- Flags have no schema.
SELECT latest_version, deleted, 0 AS schema_version FROM flags WHERE flag_key = ?

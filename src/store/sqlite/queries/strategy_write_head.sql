-- Strategies have no schema.
SELECT latest_version, deleted, 0 AS schema_version FROM strategies WHERE name = ?

-- The config's head row and its new version, in one statement.
WITH head AS (
    INSERT INTO configs (config_id, latest_version, deleted) VALUES ($1, $2, FALSE)
    ON CONFLICT (config_id) DO UPDATE
      SET latest_version = excluded.latest_version, deleted = FALSE
)
INSERT INTO config_versions
    (config_id, version, document, checksum, actor, message, created_at, rollback_of)
VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8)

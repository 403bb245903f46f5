-- The flag's head row and its new version, in one statement.
WITH head AS (
    INSERT INTO flags (flag_key, latest_version, deleted) VALUES ($1, $2, FALSE)
    ON CONFLICT (flag_key) DO UPDATE
      SET latest_version = excluded.latest_version, deleted = FALSE
)
INSERT INTO flag_versions
    (flag_key, version, definition, checksum, actor, message, created_at, rollback_of)
VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8)

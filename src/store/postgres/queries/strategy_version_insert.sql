-- The strategy's head row and its new version, in one statement.
WITH head AS (
    INSERT INTO strategies (name, latest_version, deleted) VALUES ($1, $2, FALSE)
    ON CONFLICT (name) DO UPDATE
      SET latest_version = excluded.latest_version, deleted = FALSE
)
INSERT INTO strategy_versions
    (name, version, document, checksum, actor, message, created_at, rollback_of)
VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8)

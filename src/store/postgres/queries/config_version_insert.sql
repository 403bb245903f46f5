-- The config's head row as the transaction sees it and, only if the write's expectations hold
-- (live version $8, 0 when absent or deleted; schema version $9), its new head row and version,
-- in one statement. The head is all zero (false) when there is none; `written` is the new
-- version's number, NULL when nothing was written.
WITH current AS (
    SELECT latest_version, deleted, schema_version FROM configs WHERE config_id = $1
), next AS (
    SELECT COALESCE(MAX(latest_version), 0) + 1 AS version FROM current
    HAVING COALESCE(MAX(CASE WHEN deleted THEN 0 ELSE latest_version END), 0) = $8
       AND COALESCE(MAX(schema_version), 0) = $9
), head AS (
    INSERT INTO configs (config_id, latest_version, deleted) SELECT $1, version, FALSE FROM next
    ON CONFLICT (config_id) DO UPDATE
      SET latest_version = excluded.latest_version, deleted = FALSE
), inserted AS (
    INSERT INTO config_versions
        (config_id, version, document, checksum, actor, message, created_at, rollback_of)
    SELECT $1, version, $2::json, $3, $4, $5, $6, $7 FROM next
)
SELECT COALESCE(current.latest_version, 0) AS latest_version,
       COALESCE(current.deleted, FALSE) AS deleted,
       COALESCE(current.schema_version, 0) AS schema_version, next.version AS written
FROM (SELECT) AS one LEFT JOIN current ON TRUE LEFT JOIN next ON TRUE

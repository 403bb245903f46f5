-- Version writes of one kind's documents, each about a different document, in one statement:
-- each one's head row as the transaction sees it (all zero, false, when there is none) and, only
-- for the writes whose expectations hold (live version, 0 when absent or deleted; schema version;
-- the number it must get, when given), its new head row and version. One row per write, in the
-- order given; `written` is the new version's number, NULL when nothing was written. Each head row
-- is looked up on its own, through the primary key (the LIMIT keeps the planner from joining the
-- whole table for the 100 rows it guesses the arrays hold).
WITH current AS (
    SELECT given.*, COALESCE(stored.latest_version, 0) AS latest_version,
           COALESCE(stored.deleted, FALSE) AS deleted,
           COALESCE(stored.schema_version, 0) AS schema_version
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
             WITH ORDINALITY AS given(id, body, checksum, actor, message, created_at, rollback_of,
                                      expected_live, expected_schema, expected_number,
                                      n)
    LEFT JOIN LATERAL (
        SELECT latest_version, deleted, {schema_version} AS schema_version FROM {heads}
        WHERE {key} = given.id LIMIT 1
    ) AS stored ON TRUE
), next AS (
    SELECT *, latest_version + 1 AS version FROM current
    WHERE CASE WHEN deleted THEN 0 ELSE latest_version END = expected_live
      AND schema_version = expected_schema
      AND (expected_number IS NULL OR latest_version + 1 = expected_number)
), head AS (
    INSERT INTO {heads} ({key}, latest_version, deleted) SELECT id, version, FALSE FROM next
    ON CONFLICT ({key}) DO UPDATE
      SET latest_version = excluded.latest_version, deleted = FALSE
), inserted AS (
    INSERT INTO {versions}
        ({key}, version, {body}, checksum, actor, message, created_at, rollback_of)
    SELECT id, version, body::json, checksum, actor, message, created_at, rollback_of FROM next
)
SELECT current.latest_version, current.deleted, current.schema_version, next.version AS written
FROM current LEFT JOIN next USING (n)
ORDER BY current.n

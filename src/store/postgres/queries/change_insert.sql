-- A change with the next revision and its audit record. The revision is numbered under the
-- write lock, not by a sequence: a rolled-back write must not leave a hole in the revisions.
WITH change AS (
    INSERT INTO changes
        (revision, kind, config_id, version, checksum, actor, message, at, environments, details)
    SELECT COALESCE(MAX(revision), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $9::json, $11::json
    FROM changes
    RETURNING revision
), audited AS (
    INSERT INTO audit
        (revision, at, actor, action, config_id, version, environments, message, on_behalf_of,
         details)
    SELECT revision, $7, $5, $8, $2, $3, $9::json, $6, $10, $11::json FROM change
)
SELECT revision FROM change

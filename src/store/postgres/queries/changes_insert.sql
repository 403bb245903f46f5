-- Changes with the next revisions, in the order given, and their audit records (whose details
-- are the change's, stored once: see migration 0013); returns the
-- revision before the first. Revisions are numbered under the write lock, not by a sequence: a
-- rolled-back write must not leave a hole in the revisions. With a channel ($12), announces the
-- last revision on it (delivered on commit; the payload is the newest revision committed).
WITH latest AS (
    SELECT COALESCE(MAX(revision), 0) AS revision FROM changes
), given AS (
    SELECT latest.revision + t.n AS revision, t.*
    FROM latest,
         unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[])
             WITH ORDINALITY AS t(kind, subject, version, checksum, actor, message, at, action,
                                  environments, on_behalf_of, details, n)
), change AS (
    INSERT INTO changes
        (revision, kind, config_id, version, checksum, actor, message, at, environments, details)
    SELECT revision, kind, subject, version, checksum, actor, message, at, environments::json,
           details::json
    FROM given ORDER BY revision
), audited AS (
    INSERT INTO audit
        (revision, at, actor, action, config_id, version, environments, message, on_behalf_of)
    SELECT revision, at, actor, action, subject, version, environments::json, message,
           on_behalf_of
    FROM given ORDER BY revision
), announced AS (
    SELECT pg_notify($12, (latest.revision + cardinality($1::text[]))::text)
    FROM latest WHERE $12::text IS NOT NULL
)
SELECT revision FROM latest LEFT JOIN announced ON TRUE

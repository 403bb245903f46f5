-- Parameters: webhook ids, revisions, kinds, subjects, bodies (arrays), the time.
INSERT INTO webhook_deliveries (webhook_id, revision, kind, subject, body, status, attempts,
                                next_attempt_at, created_at)
SELECT t.webhook_id, t.revision, t.kind, t.subject, t.body, 'pending', 0, $6, $6
FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
     AS t(webhook_id, revision, kind, subject, body)
ON CONFLICT (webhook_id, revision) DO NOTHING

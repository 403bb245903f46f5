-- Parameters: webhook ids, revisions, kinds, subjects (arrays), the time.
INSERT INTO webhook_deliveries (webhook_id, revision, kind, subject, status, attempts,
                                next_attempt_at, created_at)
SELECT t.webhook_id, t.revision, t.kind, t.subject, 'pending', 0, $5, $5
FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[])
     AS t(webhook_id, revision, kind, subject)
ON CONFLICT (webhook_id, revision) DO NOTHING

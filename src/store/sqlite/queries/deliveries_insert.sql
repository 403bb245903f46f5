-- Deliveries from one JSON array of {webhook, revision, kind, subject} (one statement for
-- a whole fan-out); the time is the second parameter. A repeat is ignored.
INSERT INTO webhook_deliveries (webhook_id, revision, kind, subject, status, attempts,
                                next_attempt_at, created_at)
SELECT j.value ->> 'webhook', j.value ->> 'revision', j.value ->> 'kind',
       j.value ->> 'subject', 'pending', 0, ?2, ?2
FROM json_each(?1) AS j WHERE true
ON CONFLICT (webhook_id, revision) DO NOTHING

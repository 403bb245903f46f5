-- A delivery waits behind an earlier pending one of the same webhook and subject that is not
-- due (per-subject order); the groups being sent ($3 webhook ids beside $4 subjects) are left
-- out.
SELECT d.id, d.webhook_id, d.revision, d.kind, d.subject, d.status, d.attempts,
       d.next_attempt_at, d.last_error, d.last_status, d.latency_ms, d.created_at, d.delivered_at
FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE d.status = 'pending' AND w.enabled AND d.next_attempt_at <= $1
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.status = 'pending' AND e.webhook_id = d.webhook_id AND e.subject = d.subject
        AND e.id < d.id AND e.next_attempt_at > $1)
  AND NOT EXISTS (
      SELECT 1 FROM unnest($3::text[], $4::text[]) AS s(webhook_id, subject)
      WHERE s.webhook_id = d.webhook_id AND s.subject = d.subject)
ORDER BY d.id LIMIT $2

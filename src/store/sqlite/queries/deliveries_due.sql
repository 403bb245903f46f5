-- Parameters: now, now, sending (a JSON array of [webhook id, subject] pairs), limit. A delivery
-- waits behind an earlier pending one of the same webhook and subject that is not due
-- (per-subject order); the groups being sent are left out.
SELECT d.id, d.webhook_id, d.revision, d.kind, d.subject, d.status, d.attempts,
       d.next_attempt_at, d.last_error, d.last_status, d.latency_ms, d.created_at, d.delivered_at
FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE d.status = 'pending' AND w.enabled = 1 AND d.next_attempt_at <= ?
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.status = 'pending' AND e.webhook_id = d.webhook_id AND e.subject = d.subject
        AND e.id < d.id AND e.next_attempt_at > ?)
  AND NOT EXISTS (
      SELECT 1 FROM json_each(?) s
      WHERE json_extract(s.value, '$[0]') = d.webhook_id
        AND json_extract(s.value, '$[1]') = d.subject)
ORDER BY d.id LIMIT ?

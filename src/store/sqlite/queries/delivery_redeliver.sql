UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,
       last_error = NULL, delivered_at = NULL
WHERE webhook_id = ? AND id = ?
RETURNING id, webhook_id, revision, kind, subject, status, attempts, next_attempt_at,
          last_error, last_status, latency_ms, created_at, delivered_at

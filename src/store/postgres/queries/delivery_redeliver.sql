UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1,
       last_error = NULL, delivered_at = NULL
WHERE webhook_id = $2 AND id = $3
RETURNING id, webhook_id, revision, kind, subject, status, attempts, next_attempt_at,
          last_error, last_status, latency_ms, created_at, delivered_at

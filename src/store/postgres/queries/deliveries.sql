SELECT id, webhook_id, revision, kind, subject, status, attempts, next_attempt_at,
       last_error, last_status, latency_ms, created_at, delivered_at
FROM webhook_deliveries WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3

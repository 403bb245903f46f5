UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,
       last_status = ?, latency_ms = ?,
       delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END
WHERE id = ?

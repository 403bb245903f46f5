-- One row per attempt (arrays): id, status, attempts, next attempt, error, HTTP status,
-- latency, time. Only where the delivery is still where the attempt found it (pending, with one
-- attempt fewer): a late outcome (a lease handed over, a redelivery meanwhile) is dropped.
UPDATE webhook_deliveries d SET status = t.status, attempts = t.attempts,
       next_attempt_at = t.next_attempt_at, last_error = t.last_error,
       last_status = t.last_status, latency_ms = t.latency_ms,
       delivered_at = CASE WHEN t.status = 'delivered' THEN t.at ELSE d.delivered_at END
FROM UNNEST($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::int[],
            $7::bigint[], $8::timestamptz[])
     AS t(id, status, attempts, next_attempt_at, last_error, last_status, latency_ms, at)
WHERE d.id = t.id AND d.status = 'pending' AND d.attempts = t.attempts - 1

-- Attempts' outcomes from one JSON array of {id, status, attempts, next, error, code,
-- latency, at}, each only where the delivery is still where the attempt found it (pending,
-- with one attempt fewer): a late outcome (a lease handed over, a redelivery meanwhile) is
-- dropped. `+d.status` keeps the planner on the primary key (the status index would make it
-- scan every pending delivery once per outcome).
UPDATE webhook_deliveries AS d
SET status = j.value ->> 'status', attempts = j.value ->> 'attempts',
    next_attempt_at = j.value ->> 'next', last_error = j.value ->> 'error',
    last_status = j.value ->> 'code', latency_ms = j.value ->> 'latency',
    delivered_at = CASE WHEN j.value ->> 'status' = 'delivered' THEN j.value ->> 'at'
                        ELSE d.delivered_at END
FROM json_each(?1) AS j
WHERE d.id = j.value ->> 'id' AND +d.status = 'pending'
  AND d.attempts = (j.value ->> 'attempts') - 1

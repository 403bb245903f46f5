-- Deliveries that ended before the cutoff (a delivered one when it was delivered, a failed one
-- at its last attempt), and any left by a webhook deleted meanwhile.
DELETE FROM webhook_deliveries
WHERE (status = 'delivered' AND delivered_at < $1)
   OR (status = 'failed' AND next_attempt_at < $1)
   OR webhook_id NOT IN (SELECT id FROM webhooks)

-- Ended deliveries older than the cutoff, and any left by a webhook deleted meanwhile.
DELETE FROM webhook_deliveries
WHERE (status <> 'pending' AND created_at < $1)
   OR webhook_id NOT IN (SELECT id FROM webhooks)

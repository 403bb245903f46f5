DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1

SELECT COUNT(*) FROM webhooks WHERE id = $1

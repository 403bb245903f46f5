SELECT COUNT(*) FROM webhooks WHERE id = ?

UPDATE webhooks SET url = ?, events = ?, filter = ?, description = ?, enabled = ?,
       disabled_reason = ?, failing_since = ?, seq = ?, updated_at = ?, secrets = ?
WHERE id = ? AND seq = ?

INSERT INTO webhook_deliveries (webhook_id, revision, kind, subject, body, status, attempts,
                                next_attempt_at, created_at)
VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)
ON CONFLICT (webhook_id, revision) DO NOTHING

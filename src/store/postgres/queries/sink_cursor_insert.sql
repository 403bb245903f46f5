INSERT INTO notification_cursors (sink, revision) VALUES ($1, $2) ON CONFLICT (sink) DO NOTHING

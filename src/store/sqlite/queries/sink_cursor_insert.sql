INSERT INTO notification_cursors (sink, revision) VALUES (?, ?) ON CONFLICT (sink) DO NOTHING

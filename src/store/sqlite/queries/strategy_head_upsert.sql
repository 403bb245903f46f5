INSERT INTO strategies (name, latest_version, deleted) VALUES (?, ?, 0)
ON CONFLICT (name) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0

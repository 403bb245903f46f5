INSERT INTO flags (flag_key, latest_version, deleted) VALUES (?, ?, 0)
ON CONFLICT (flag_key) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0

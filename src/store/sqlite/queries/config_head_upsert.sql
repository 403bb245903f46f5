INSERT INTO configs (config_id, latest_version, deleted) VALUES (?, ?, 0)
ON CONFLICT (config_id) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0

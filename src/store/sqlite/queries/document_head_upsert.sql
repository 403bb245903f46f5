INSERT INTO {heads} ({key}, latest_version, deleted) VALUES (?, ?, 0)
ON CONFLICT ({key}) DO UPDATE SET latest_version = excluded.latest_version, deleted = 0

INSERT INTO applied_states (config_id, environment, instance_id, version, checksum, reported_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (config_id, environment, instance_id) DO UPDATE SET
  version = excluded.version, checksum = excluded.checksum, reported_at = excluded.reported_at

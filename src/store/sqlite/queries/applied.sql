SELECT config_id, environment, instance_id, version, checksum, reported_at
FROM applied_states WHERE (? IS NULL OR config_id = ?)
ORDER BY config_id, environment, instance_id

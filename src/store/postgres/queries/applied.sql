SELECT config_id, environment, instance_id, version, checksum, reported_at
FROM applied_states WHERE ($1::text IS NULL OR config_id = $1)
ORDER BY config_id, environment, instance_id

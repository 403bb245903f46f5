SELECT version, last_heartbeat_ms, registered_ms FROM registry_instances
WHERE service = ?1 AND instance_id = ?2

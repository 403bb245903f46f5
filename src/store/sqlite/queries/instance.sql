SELECT service, instance_id, version, document, last_heartbeat_ms, expired, applied, output, metrics
FROM registry_instances
WHERE service = ?1 AND instance_id = ?2

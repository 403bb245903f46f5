SELECT service, instance_id, version, document, last_heartbeat_ms, expired, applied, output, metrics
FROM registry_instances
WHERE ?1 IS NULL OR service = ?1
ORDER BY service, instance_id

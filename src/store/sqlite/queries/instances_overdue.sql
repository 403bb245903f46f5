SELECT service, instance_id, version, document, last_heartbeat_ms, expired, applied, output, metrics
FROM registry_instances
WHERE (expired = 0 AND last_heartbeat_ms + ttl_ms < ?1) OR last_heartbeat_ms + remove_after_ms < ?1
ORDER BY service, instance_id

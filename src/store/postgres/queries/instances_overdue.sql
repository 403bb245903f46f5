SELECT service, instance_id, version, document::text AS document, last_heartbeat_ms, expired,
       applied::text AS applied, output, metrics
FROM registry_instances
WHERE (NOT expired AND last_heartbeat_ms + ttl_ms < $1) OR last_heartbeat_ms + remove_after_ms < $1
ORDER BY service, instance_id

SELECT service, instance_id, version, document::text AS document, last_heartbeat_ms, expired,
       applied::text AS applied, output, metrics
FROM registry_instances
WHERE $1 IS NULL OR service = $1
ORDER BY service, instance_id

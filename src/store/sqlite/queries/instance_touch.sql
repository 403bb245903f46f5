UPDATE registry_instances
SET last_heartbeat_ms = max(last_heartbeat_ms, ?1),
    applied = coalesce(?2, applied),
    output = coalesce(?3, output)
WHERE service = ?4 AND instance_id = ?5 AND expired = 0 AND last_heartbeat_ms + ttl_ms >= ?1

-- Every heartbeat of a flush in one statement (?1: a JSON array of {service, instance, at,
-- applied, output, metrics}, one per instance); answers the instances found alive. A heartbeat
-- that changes the applied map forgets the metrics, its own too: they were measured running
-- what the instance ran before (a deployment's gate waits for the next ones).
UPDATE registry_instances AS r
SET last_heartbeat_ms = max(r.last_heartbeat_ms, t.at),
    applied = coalesce(t.applied, r.applied),
    output = coalesce(t.output, r.output),
    metrics = CASE WHEN t.applied IS NOT NULL AND json(t.applied) IS NOT json(r.applied) THEN NULL
                   ELSE coalesce(t.metrics, r.metrics) END
FROM (SELECT value ->> '$.service' AS service, value ->> '$.instance' AS instance_id,
             value ->> '$.at' AS at, value ->> '$.applied' AS applied,
             value ->> '$.output' AS output, value ->> '$.metrics' AS metrics
      FROM json_each(?1)) AS t
WHERE r.service = t.service AND r.instance_id = t.instance_id
  AND r.expired = 0 AND r.last_heartbeat_ms + r.ttl_ms >= t.at
RETURNING service, instance_id

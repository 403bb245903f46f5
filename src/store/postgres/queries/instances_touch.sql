-- Every heartbeat of a flush in one statement; answers the positions of those that found their
-- instance alive. A heartbeat that changes the applied map forgets the metrics, its own too: they
-- were measured running what the instance ran before (a deployment's gate waits for the next).
UPDATE registry_instances AS r
SET last_heartbeat_ms = greatest(r.last_heartbeat_ms, t.at),
    applied = coalesce(t.applied::json, r.applied),
    output = coalesce(t.output, r.output),
    metrics = CASE WHEN t.applied IS NOT NULL
                        AND t.applied::jsonb IS DISTINCT FROM r.applied::jsonb THEN NULL
                   ELSE coalesce(t.metrics, r.metrics) END
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
     WITH ORDINALITY AS t(service, instance_id, at, applied, output, metrics, position)
WHERE r.service = t.service AND r.instance_id = t.instance_id
  AND NOT r.expired AND r.last_heartbeat_ms + r.ttl_ms >= t.at
RETURNING t.position

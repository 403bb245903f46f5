INSERT INTO registry_instances
  (service, instance_id, version, document, last_heartbeat_ms, ttl_ms, remove_after_ms, expired, applied, output)
VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $9::json, $10)
ON CONFLICT (service, instance_id) DO UPDATE SET
  version = excluded.version, document = excluded.document,
  last_heartbeat_ms = excluded.last_heartbeat_ms, ttl_ms = excluded.ttl_ms,
  remove_after_ms = excluded.remove_after_ms, expired = excluded.expired,
  applied = excluded.applied, output = excluded.output

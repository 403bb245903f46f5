-- A write of an instance never moves its last heartbeat back (a heartbeat may have landed since
-- the instance was read) and keeps its applied map (heartbeats own it).
INSERT INTO registry_instances
  (service, instance_id, version, document, registered_ms, last_heartbeat_ms, ttl_ms,
   remove_after_ms, expired, applied, output)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (service, instance_id) DO UPDATE SET
  version = excluded.version, document = excluded.document,
  registered_ms = excluded.registered_ms,
  last_heartbeat_ms = max(registry_instances.last_heartbeat_ms, excluded.last_heartbeat_ms),
  ttl_ms = excluded.ttl_ms, remove_after_ms = excluded.remove_after_ms,
  expired = excluded.expired, output = excluded.output

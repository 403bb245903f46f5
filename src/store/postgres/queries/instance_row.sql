-- Locked: a heartbeat waits for the write that read the row, then sees what it wrote.
SELECT version, last_heartbeat_ms, registered_ms FROM registry_instances
WHERE service = $1 AND instance_id = $2
FOR UPDATE

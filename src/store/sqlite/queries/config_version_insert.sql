INSERT INTO config_versions
  (config_id, version, document, checksum, actor, message, created_at, rollback_of)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

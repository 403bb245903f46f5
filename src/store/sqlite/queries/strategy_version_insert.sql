INSERT INTO strategy_versions
  (name, version, document, checksum, actor, message, created_at, rollback_of)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

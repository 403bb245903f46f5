INSERT INTO flag_versions
  (flag_key, version, definition, checksum, actor, message, created_at, rollback_of)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

INSERT INTO {versions}
  ({key}, version, {body}, checksum, actor, message, created_at, rollback_of)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)

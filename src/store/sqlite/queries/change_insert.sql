INSERT INTO changes (kind, config_id, version, checksum, actor, message, at)
VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING revision

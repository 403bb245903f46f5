INSERT INTO changes (kind, config_id, version, checksum, actor, message, at, environments, details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING revision

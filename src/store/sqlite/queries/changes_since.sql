SELECT revision, kind, config_id, version, checksum, actor, message, at, environments, details
FROM changes WHERE revision > ? ORDER BY revision LIMIT ?

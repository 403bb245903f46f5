SELECT revision, kind, config_id, version, checksum, actor, message, at
FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2

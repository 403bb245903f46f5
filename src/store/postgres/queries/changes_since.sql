SELECT revision, kind, config_id, version, checksum, actor, message, at,
       environments::text AS environments, details::text AS details
FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2

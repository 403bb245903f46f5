SELECT v.config_id AS id, v.version, v.document::text AS body, v.checksum, v.actor, v.message,
       v.created_at, v.rollback_of, c.deleted
FROM configs c JOIN config_versions v
  ON v.config_id = c.config_id AND v.version = c.latest_version
WHERE c.config_id = $1

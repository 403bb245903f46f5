SELECT v.{key} AS id, v.version, v.{body} AS body, v.checksum, v.actor, v.message, v.created_at,
       v.rollback_of, h.deleted
FROM {heads} h JOIN {versions} v
  ON v.{key} = h.{key} AND v.version = h.latest_version
ORDER BY h.{key}

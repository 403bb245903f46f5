SELECT v.flag_key AS id, v.version, v.definition::text AS body, v.checksum, v.actor, v.message,
       v.created_at, v.rollback_of, f.deleted
FROM flags f JOIN flag_versions v
  ON v.flag_key = f.flag_key AND v.version = f.latest_version
ORDER BY f.flag_key

SELECT v.name AS id, v.version, v.document::text AS body, v.checksum, v.actor, v.message,
       v.created_at, v.rollback_of, f.deleted
FROM strategies f JOIN strategy_versions v
  ON v.name = f.name AND v.version = f.latest_version
WHERE f.name = $1

-- A config and a flag may share an id: the action tells their records apart.
-- Token ids may look like config ids: their records belong to neither.
SELECT id, revision, at, actor, action, config_id, version, environments::text AS environments,
       message, on_behalf_of
FROM audit WHERE id < $1 AND ($2::text IS NULL OR config_id = $2)
  AND ($3::boolean IS NULL OR (action LIKE 'flag.%') = $3)
  AND ($2::text IS NULL OR action NOT LIKE 'token.%')
ORDER BY id DESC LIMIT $4

-- A config and a flag may share an id: the action tells their records apart.
-- Token ids, secret and strategy names may look like config ids: their records belong to
-- neither a config nor a flag.
SELECT id, revision, at, actor, action, config_id, version, environments::text AS environments,
       message, on_behalf_of, details::text AS details
FROM audit WHERE id < $1 AND ($2::text IS NULL OR config_id = $2)
  AND ($3::boolean IS NULL OR (action LIKE 'flag.%') = $3)
  AND ($2::text IS NULL OR (action NOT LIKE 'token.%' AND action NOT LIKE 'secret.%'
                            AND action NOT LIKE 'strategy.%'
                            AND action NOT LIKE 'webhook.%'))
ORDER BY id DESC LIMIT $4

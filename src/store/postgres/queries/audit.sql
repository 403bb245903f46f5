-- A config and a flag may share an id: the action tells their records apart.
-- Token ids, secret and strategy names may look like config ids: their records belong to
-- neither a config nor a flag.
-- A record's details are its change's (rows before migration 0013 carry their own copy).
SELECT a.id, a.revision, a.at, a.actor, a.action, a.config_id, a.version,
       a.environments::text AS environments, a.message, a.on_behalf_of,
       COALESCE(a.details, c.details)::text AS details
FROM audit AS a JOIN changes AS c ON c.revision = a.revision
WHERE a.id < $1 AND ($2::text IS NULL OR a.config_id = $2)
  AND ($3::boolean IS NULL OR (a.action LIKE 'flag.%') = $3)
  AND ($2::text IS NULL OR (a.action NOT LIKE 'token.%' AND a.action NOT LIKE 'secret.%'
                            AND a.action NOT LIKE 'strategy.%'
                            AND a.action NOT LIKE 'webhook.%'))
ORDER BY a.id DESC LIMIT $4

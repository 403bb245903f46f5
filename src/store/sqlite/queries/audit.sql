-- Parameters: before, subject id twice, subject-is-flag twice, subject id, limit.
-- A config and a flag may share an id: the action tells their records apart. Token ids, secret
-- and strategy names may look like config ids: their records belong to neither.
SELECT id, revision, at, actor, action, config_id, version, environments, message, on_behalf_of,
       details
FROM audit WHERE id < ? AND (? IS NULL OR config_id = ?)
  AND (? IS NULL OR (action LIKE 'flag.%') = ?)
  AND (? IS NULL OR (action NOT LIKE 'token.%' AND action NOT LIKE 'secret.%'
                     AND action NOT LIKE 'strategy.%' AND action NOT LIKE 'webhook.%'))
ORDER BY id DESC LIMIT ?

SELECT document FROM deployments
WHERE ($1 IS NULL OR config_id = $1)
  AND ($2 IS NULL OR environment = $2)
  AND (NOT $3 OR active)
  AND ($4 IS NULL OR created_us < $4)
ORDER BY created_us DESC, id DESC
LIMIT $5

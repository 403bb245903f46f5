INSERT INTO access_denials (at, actor, operation, resource, reason) VALUES ($1, $2, $3, $4, $5)

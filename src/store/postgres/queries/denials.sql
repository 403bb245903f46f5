SELECT id, at, actor, operation, resource, reason
FROM access_denials WHERE id < $1 ORDER BY id DESC LIMIT $2

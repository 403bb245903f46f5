SELECT id, at, actor, operation, resource, reason
FROM access_denials WHERE id < ? ORDER BY id DESC LIMIT ?

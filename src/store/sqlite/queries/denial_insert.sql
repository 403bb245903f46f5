INSERT INTO access_denials (at, actor, operation, resource, reason) VALUES (?, ?, ?, ?, ?)

-- Marks the secret deleted; returns the checksum of the version the delete removes.
UPDATE secrets SET deleted = TRUE WHERE name = $1
RETURNING (SELECT checksum FROM secret_versions WHERE name = $1 AND version = $2)

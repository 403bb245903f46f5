-- Marks the document deleted; returns the checksum of the version the delete removes.
UPDATE {heads} SET deleted = TRUE WHERE {key} = $1
RETURNING (SELECT checksum FROM {versions} WHERE {key} = $1 AND version = $2)

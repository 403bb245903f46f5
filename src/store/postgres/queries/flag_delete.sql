-- Marks the flag deleted; returns the checksum of the version the delete removes.
UPDATE flags SET deleted = TRUE WHERE flag_key = $1
RETURNING (SELECT checksum FROM flag_versions WHERE flag_key = $1 AND version = $2)

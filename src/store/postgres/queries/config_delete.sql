-- Marks the config deleted; returns the checksum of the version the delete removes.
UPDATE configs SET deleted = TRUE WHERE config_id = $1
RETURNING (SELECT checksum FROM config_versions WHERE config_id = $1 AND version = $2)

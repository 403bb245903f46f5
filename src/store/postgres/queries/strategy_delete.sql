-- Marks the strategy deleted; returns the checksum of the version the delete removes.
UPDATE strategies SET deleted = TRUE WHERE name = $1
RETURNING (SELECT checksum FROM strategy_versions WHERE name = $1 AND version = $2)

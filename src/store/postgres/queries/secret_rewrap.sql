UPDATE secret_versions SET document = $1::json, checksum = $2
WHERE name = $3 AND version = $4 AND checksum = $5

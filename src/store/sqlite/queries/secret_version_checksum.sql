SELECT checksum FROM secret_versions WHERE name = ? AND version = ?

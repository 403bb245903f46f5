SELECT checksum FROM strategy_versions WHERE name = ? AND version = ?

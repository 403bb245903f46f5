SELECT checksum FROM config_versions WHERE config_id = ? AND version = ?

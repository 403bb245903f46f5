SELECT checksum FROM flag_versions WHERE flag_key = ? AND version = ?

SELECT checksum FROM {versions} WHERE {key} = ? AND version = ?

-- Parameters: new document, new checksum, name, version, expected checksum.
UPDATE secret_versions SET document = ?, checksum = ?
WHERE name = ? AND version = ? AND checksum = ?

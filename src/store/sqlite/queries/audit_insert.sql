INSERT INTO audit
  (revision, at, actor, action, config_id, version, environments, message, on_behalf_of, details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

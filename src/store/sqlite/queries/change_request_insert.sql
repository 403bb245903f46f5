INSERT INTO change_requests
  (id, config_id, operation, base_version, environments, required_approvals, approvals, status,
   requested_by, on_behalf_of, message, reason, applied_version, created_at, updated_at,
   subject_kind)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING

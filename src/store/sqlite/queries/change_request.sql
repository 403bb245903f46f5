SELECT id, subject_kind, config_id, operation, base_version, environments, required_approvals, approvals,
       status, requested_by, on_behalf_of, message, reason, applied_version, created_at,
       updated_at
FROM change_requests WHERE id = ?

SELECT id, subject_kind, config_id, operation::text AS operation, base_version,
       environments::text AS environments, required_approvals, approvals::text AS approvals,
       status, requested_by, on_behalf_of, message, reason, applied_version, created_at,
       updated_at
FROM change_requests WHERE id = $1

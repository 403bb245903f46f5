INSERT INTO change_requests
    (id, config_id, operation, base_version, environments, required_approvals, approvals,
     status, requested_by, on_behalf_of, message, reason, applied_version, created_at,
     updated_at, subject_kind)
VALUES ($1, $2, $3::json, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15,
        $16)
ON CONFLICT (id) DO NOTHING

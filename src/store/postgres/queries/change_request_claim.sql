UPDATE change_requests SET status = 'applied', applied_version = $1, updated_at = $2
WHERE id = $3 AND status = 'approved'

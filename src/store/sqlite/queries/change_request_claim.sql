UPDATE change_requests SET status = 'applied', applied_version = ?, updated_at = ?
WHERE id = ? AND status = 'approved'

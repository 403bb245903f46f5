-- What a request was asked for never changes; only its progress does.
UPDATE change_requests
SET status = ?, approvals = ?, reason = ?, applied_version = ?, updated_at = ?
WHERE id = ? AND status = ? AND json_array_length(approvals) = ?

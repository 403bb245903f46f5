-- What a request was asked for never changes; only its progress does, compared and set on
-- (status, number of approvals).
UPDATE change_requests
SET status = $1, approvals = $2::jsonb, reason = $3, applied_version = $4, updated_at = $5
WHERE id = $6 AND status = $7 AND jsonb_array_length(approvals) = $8

-- Parameters: status twice, subject kind twice, subject id, environment twice, the id prefixes
-- (a JSON array; empty: any id) twice, limit.
SELECT id, subject_kind, config_id, operation, base_version, environments, required_approvals, approvals,
       status, requested_by, on_behalf_of, message, reason, applied_version, created_at,
       updated_at
FROM change_requests
WHERE (? IS NULL OR status = ?) AND (? IS NULL OR (subject_kind = ? AND config_id = ?))
  AND (? IS NULL OR EXISTS (
    SELECT 1 FROM json_each(change_requests.environments) e WHERE e.value = ?))
  AND (json_array_length(?) = 0 OR EXISTS (
    SELECT 1 FROM json_each(?) p WHERE substr(config_id, 1, length(p.value)) = p.value))
ORDER BY created_at DESC, id DESC LIMIT ?

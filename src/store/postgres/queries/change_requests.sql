SELECT id, subject_kind, config_id, operation::text AS operation, base_version,
       environments::text AS environments, required_approvals, approvals::text AS approvals,
       status, requested_by, on_behalf_of, message, reason, applied_version, created_at,
       updated_at
FROM change_requests
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR (subject_kind = $2 AND config_id = $3))
  AND ($4::text IS NULL OR environments @> jsonb_build_array($4::text))
  AND (cardinality($6::text[]) = 0 OR EXISTS (
    SELECT 1 FROM unnest($6::text[]) AS p(prefix) WHERE starts_with(config_id, p.prefix)))
ORDER BY created_at DESC, id DESC LIMIT $5

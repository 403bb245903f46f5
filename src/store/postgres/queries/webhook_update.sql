UPDATE webhooks SET url = $1, events = $2::jsonb, filter = $3::jsonb, description = $4,
       enabled = $5, disabled_reason = $6, failing_since = $7, seq = $8, updated_at = $9,
       secrets = $10::jsonb
WHERE id = $11 AND seq = $12

SELECT id, url, events, filter, description, enabled, disabled_reason, failing_since, seq,
       since_revision, created_at, updated_at, secrets
FROM webhooks ORDER BY created_at, id

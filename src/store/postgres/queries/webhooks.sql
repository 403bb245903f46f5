SELECT id, url, events::text AS events, filter::text AS filter, description, enabled,
       disabled_reason, failing_since, seq, since_revision, created_at, updated_at,
       secrets::text AS secrets
FROM webhooks ORDER BY created_at, id

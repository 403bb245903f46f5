-- A new webhook; it hears changes after the latest one (the write lock orders revisions).
INSERT INTO webhooks (id, url, events, filter, description, enabled, disabled_reason,
                      failing_since, seq, since_revision, created_at, updated_at, secrets)
SELECT $1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9, COALESCE(MAX(revision), 0), $10, $11,
       $12::jsonb
FROM changes
ON CONFLICT (id) DO NOTHING

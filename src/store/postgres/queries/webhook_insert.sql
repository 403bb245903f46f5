-- A new webhook; it hears changes after the latest one (the write lock orders revisions).
-- $1–$10 are the fields an update binds too, in the same order; then the id and created_at.
INSERT INTO webhooks (id, url, events, filter, description, enabled, disabled_reason,
                      failing_since, seq, since_revision, created_at, updated_at, secrets)
SELECT $11, $1, $2::jsonb, $3::jsonb, $4, $5, $6, $7, $8, COALESCE(MAX(revision), 0), $12, $9,
       $10::jsonb
FROM changes
ON CONFLICT (id) DO NOTHING

-- A new webhook; it hears changes after the latest one (the write lock orders revisions).
INSERT INTO webhooks (id, url, events, filter, description, enabled, disabled_reason,
                      failing_since, seq, since_revision, created_at, updated_at, secrets)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(revision), 0) FROM changes), ?, ?, ?)
ON CONFLICT (id) DO NOTHING

-- After a round of attempts: a webhook failing too long is disabled (and stays so until an
-- update enables it). It moves `seq`, so an update read before it is refused, not lost; and
-- it applies only while the webhook's failure state is the one it was judged from.
UPDATE webhooks SET seq = seq + 1, failing_since = ?,
       enabled = CASE WHEN ? IS NULL THEN enabled ELSE 0 END,
       disabled_reason = COALESCE(?, disabled_reason)
WHERE id = ? AND failing_since IS ?

-- After a round of attempts: a webhook failing too long is disabled (and stays so until an
-- update enables it). Parameters: ids, failing_since, disabled reasons, the failure state
-- each was judged from (arrays). It moves `seq`, so an update read before it is refused, not
-- lost; and it applies only while the webhook's failure state is the one it was judged from.
UPDATE webhooks w SET seq = w.seq + 1, failing_since = t.failing_since,
       enabled = CASE WHEN t.reason IS NULL THEN w.enabled ELSE FALSE END,
       disabled_reason = COALESCE(t.reason, w.disabled_reason)
FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[])
     AS t(id, failing_since, reason, was)
WHERE w.id = t.id AND w.failing_since IS NOT DISTINCT FROM t.was

-- The transaction-scoped lock every write (or batch of writes) holds from numbering its
-- revisions until it commits, across every replica.
SELECT pg_advisory_xact_lock($1)

-- Begins a transaction and takes the lock every write (or batch of writes) holds from numbering
-- its revisions until it commits, across every replica; one round trip. The key is
-- 0x53756d6d6974, "Summit". READ COMMITTED whatever the database's default: each statement
-- after the lock then sees every change committed before it, so MAX(revision) is the latest.
BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(91763812166004)

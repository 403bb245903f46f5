-- Revisions are numbered by the writer under the global write lock (MAX + 1), not by a sequence:
-- a sequence value taken by a rolled-back transaction would leave a hole in the revision log.
ALTER TABLE changes ALTER COLUMN revision DROP DEFAULT;
DROP SEQUENCE IF EXISTS changes_revision_seq;

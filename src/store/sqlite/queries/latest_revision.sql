SELECT MAX(revision) FROM changes

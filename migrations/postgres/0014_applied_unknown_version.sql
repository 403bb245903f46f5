-- An instance may report a checksum that matches none of the config's recent versions (it runs
-- something older, or something else): the report is kept with version 0, "unknown", and the
-- drift report says so. SQLite has always stored it; here the check refused it, so such a
-- heartbeat or report answered 500.
ALTER TABLE applied_states DROP CONSTRAINT applied_states_version_check;
ALTER TABLE applied_states ADD CONSTRAINT applied_states_version_check CHECK (version >= 0);

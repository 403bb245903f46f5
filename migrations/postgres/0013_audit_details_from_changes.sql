-- An audit record's details are its change's (the same revision): from now on they are stored
-- once, in the change log, and audit rows written from here on leave theirs NULL (rows already
-- stored keep their copy; reads take the audit row's copy if it has one, else the change's).
-- The change log becomes append-only like the audit, since audit records now read from it.
ALTER TABLE audit ALTER COLUMN details DROP NOT NULL;
ALTER TABLE audit ALTER COLUMN details DROP DEFAULT;

CREATE FUNCTION refuse_change_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the change log is append-only';
END;
$$;
CREATE TRIGGER changes_append_only BEFORE UPDATE OR DELETE ON changes
    FOR EACH ROW EXECUTE FUNCTION refuse_change_log_change();

-- Documents and change details over about 2 KB are compressed when stored (TOAST). lz4 costs a
-- fraction of the default pglz's CPU for a similar size on JSON, and the server compresses on
-- every write. Only where the server was built with lz4; rows already stored keep their
-- compression until rewritten, and both are read alike.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE config_versions ALTER COLUMN document SET COMPRESSION lz4;
        ALTER TABLE flag_versions ALTER COLUMN definition SET COMPRESSION lz4;
        ALTER TABLE strategy_versions ALTER COLUMN document SET COMPRESSION lz4;
        ALTER TABLE changes ALTER COLUMN details SET COMPRESSION lz4;
        ALTER TABLE audit ALTER COLUMN details SET COMPRESSION lz4;
    END IF;
END
$$;

UPDATE configs SET deleted = 1 WHERE config_id = ?

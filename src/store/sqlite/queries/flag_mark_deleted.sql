UPDATE flags SET deleted = 1 WHERE flag_key = ?

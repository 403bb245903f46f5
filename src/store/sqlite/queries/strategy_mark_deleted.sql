UPDATE strategies SET deleted = 1 WHERE name = ?

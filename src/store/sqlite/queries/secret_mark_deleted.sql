UPDATE secrets SET deleted = 1 WHERE name = ?

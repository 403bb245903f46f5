UPDATE {heads} SET deleted = 1 WHERE {key} = ?

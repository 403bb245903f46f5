SELECT 1 FROM change_requests WHERE id = ?

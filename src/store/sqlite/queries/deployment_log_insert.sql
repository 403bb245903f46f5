INSERT INTO deployment_log (deployment_id, seq, entry) VALUES (?1, ?2, ?3)

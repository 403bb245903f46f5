INSERT INTO deployments (id, config_id, environment, active, seq, created_us, document)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)

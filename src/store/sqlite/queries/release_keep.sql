INSERT INTO releases (config_id, environment, version, deployment_id, released_us)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (config_id, environment) DO NOTHING

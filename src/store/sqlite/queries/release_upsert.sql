INSERT INTO releases (config_id, environment, version, deployment_id, released_us)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (config_id, environment) DO UPDATE
SET version = excluded.version, deployment_id = excluded.deployment_id,
    released_us = excluded.released_us

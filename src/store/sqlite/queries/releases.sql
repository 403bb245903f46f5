SELECT config_id, environment, version, deployment_id, released_us FROM releases
WHERE ?1 IS NULL OR config_id = ?1
ORDER BY config_id, environment

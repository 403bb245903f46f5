SELECT id FROM deployments WHERE config_id = $1 AND environment = $2 AND active

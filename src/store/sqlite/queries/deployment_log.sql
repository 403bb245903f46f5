SELECT entry FROM deployment_log WHERE deployment_id = ?1 ORDER BY seq

SELECT document FROM deployments WHERE id = ?1

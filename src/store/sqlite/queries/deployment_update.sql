UPDATE deployments SET active = ?2, seq = ?3, document = ?4 WHERE id = ?1 AND seq = ?5

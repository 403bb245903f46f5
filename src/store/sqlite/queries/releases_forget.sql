DELETE FROM releases WHERE config_id = ?1

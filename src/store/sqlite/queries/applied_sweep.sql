DELETE FROM applied_states WHERE reported_at < ?

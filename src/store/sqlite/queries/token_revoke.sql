UPDATE api_tokens SET revoked_at = ? WHERE id = ?

UPDATE api_tokens SET revoked_at = $1 WHERE id = $2

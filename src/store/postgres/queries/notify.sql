-- Delivered on commit only; the payload is the newest revision committed.
SELECT pg_notify($1, $2)

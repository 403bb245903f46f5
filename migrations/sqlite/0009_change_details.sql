-- Change events and audit records carry what the change did: the touched environments (changes
-- only; the audit had them), the previous version, the RFC 6902 patch and the affected
-- instances (`details`, JSON text; `{}` for changes recorded before this migration).
ALTER TABLE changes ADD COLUMN environments TEXT NOT NULL DEFAULT '[]';
ALTER TABLE changes ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
ALTER TABLE audit ADD COLUMN details TEXT NOT NULL DEFAULT '{}';

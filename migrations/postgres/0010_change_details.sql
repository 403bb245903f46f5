-- Change events and audit records carry what the change did: the touched environments (changes
-- only; the audit had them), the previous version, the RFC 6902 patch and the affected
-- instances (`details`; `{}` for changes recorded before this migration).
ALTER TABLE changes ADD COLUMN environments JSON NOT NULL DEFAULT '[]';
ALTER TABLE changes ADD COLUMN details JSON NOT NULL DEFAULT '{}';
ALTER TABLE audit ADD COLUMN details JSON NOT NULL DEFAULT '{}';

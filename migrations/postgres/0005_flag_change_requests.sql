-- A change request changes a config or a flag; `config_id` holds the config id or flag key.
ALTER TABLE change_requests ADD COLUMN subject_kind TEXT NOT NULL DEFAULT 'config'
    CHECK (subject_kind IN ('config', 'flag'));

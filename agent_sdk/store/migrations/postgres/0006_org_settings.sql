-- 0006: per-org governance settings (see the SQLite 0006).
CREATE TABLE org_settings (
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    name        TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, name)
);
CREATE INDEX org_settings_name ON org_settings (name, org_id);

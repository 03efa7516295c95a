-- 0006: per-org governance settings (retention, residency, redaction patterns, ...).
--
-- One row per (org, setting name), the value compact JSON. A key-value table rather than a
-- column per policy: each governance feature owns its name and the shape of its value, and a
-- new policy needs no migration. The `name` index serves "every org that has a retention
-- policy" for the sweepers.
CREATE TABLE org_settings (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
) WITHOUT ROWID;
CREATE INDEX org_settings_name ON org_settings (name, org_id);

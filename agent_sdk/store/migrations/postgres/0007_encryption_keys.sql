-- 0007: the keys of encryption at rest (see the SQLite 0007 for what each column holds).
CREATE TABLE encryption_keys (
    org_id         TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    id             TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    master_key_id  TEXT COLLATE "C" NOT NULL,
    kek            TEXT,
    dek            TEXT,
    created_at     TEXT COLLATE "C" NOT NULL,
    retired_at     TEXT COLLATE "C",
    destroyed_at   TEXT COLLATE "C",
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX encryption_keys_active ON encryption_keys (org_id) WHERE state = 'active';

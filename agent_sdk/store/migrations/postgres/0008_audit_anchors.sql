-- 0008: where a pruned audit log now begins (see the SQLite 0008). No foreign key to orgs, as
-- for audit_log itself.
CREATE TABLE audit_anchors (
    org_id     TEXT COLLATE "C" PRIMARY KEY,
    seq        BIGINT NOT NULL,
    head_hash  TEXT,
    time       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    key_id     TEXT NOT NULL
);

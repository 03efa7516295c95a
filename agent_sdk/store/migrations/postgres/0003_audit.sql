-- 0003: the audit log and its signed checkpoints (see the SQLite 0003). seq is assigned under a
-- transaction-scoped advisory lock on the org, so an org's records form one gap-free sequence
-- even when several processes append at once. No foreign key to orgs, as in SQLite.
CREATE TABLE audit_log (
    org_id      TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    time        TEXT COLLATE "C" NOT NULL,
    actor       TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    source_ip   TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT,
    hash        TEXT,
    PRIMARY KEY (org_id, seq)
);

CREATE TABLE audit_checkpoints (
    org_id     TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    head_hash  TEXT NOT NULL,
    time       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

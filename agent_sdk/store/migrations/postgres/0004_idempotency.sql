-- 0004: Idempotency-Key claims of run creation (see the SQLite 0004). The primary key settles a
-- race between requests with one key: under READ COMMITTED the loser's INSERT waits on the
-- winner's uncommitted row and then sees it.
CREATE TABLE idempotency_keys (
    org_id        TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL,
    run_id        TEXT,
    response      TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

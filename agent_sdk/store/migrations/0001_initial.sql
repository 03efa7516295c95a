-- 0001: orgs, projects, sessions, runs, events and deployment settings.
--
-- Every tenant table leads its indexes with org_id: all queries filter by org, so the org is
-- the first column of every index they use. Ids made by agent_sdk sort by creation time, so
-- (org_id, id) also serves "newest first" without a sort. Timestamps are ISO-8601 UTC text of
-- fixed width, which compares like the times. JSON columns hold compact JSON text.
--
-- No CHECK on runs.status: adding a status later would need a table rebuild in SQLite; the
-- store validates statuses against RunStatus instead.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
);

-- Session ids may be chosen by callers ("chat-42"), so they are unique per org, not globally:
-- two orgs can use the same name, and no org can learn that another one already has it.
CREATE TABLE sessions (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    id          TEXT NOT NULL,
    project_id  TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
-- Caller-chosen ids do not sort by time, so sessions list newest first by (created_at, id).
CREATE INDEX sessions_org_created ON sessions (org_id, created_at, id);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    session_id        TEXT,
    project_id        TEXT,
    agent             TEXT NOT NULL,
    agent_spec        TEXT,
    status            TEXT NOT NULL,
    input             TEXT NOT NULL,
    output            TEXT,
    error             TEXT,
    usage             TEXT NOT NULL DEFAULT '{}',
    steps             INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT NOT NULL DEFAULT '{}',
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    -- Composite, so a run can only point at a session of its own org.
    FOREIGN KEY (org_id, session_id) REFERENCES sessions (org_id, id)
);
CREATE INDEX runs_org_id ON runs (org_id, id);
CREATE INDEX runs_org_status ON runs (org_id, status, id);
CREATE INDEX runs_org_session ON runs (org_id, session_id, id);

-- WITHOUT ROWID: the rows live in the (run_id, seq) b-tree itself, so reading a run's events is
-- one range scan and MAX(seq) for the next append is a single seek. org_id is copied from the
-- run so a page of events can be checked against the caller's org without a join.
CREATE TABLE events (
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    org_id  TEXT NOT NULL,
    type    TEXT NOT NULL,
    time    TEXT NOT NULL,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- A fresh install works out of the box for the single-tenant case (AGENT_SDK_ORG=default).
-- The time expression matches agent_sdk.store._ids.utcnow(): SQLite only gives milliseconds.
INSERT INTO orgs (id, name, created_at)
VALUES ('default', 'Default',
        strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z');

INSERT INTO projects (id, org_id, name, created_at)
VALUES ('default', 'default', 'default',
        strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z');

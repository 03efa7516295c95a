-- 0001: orgs, projects, sessions, runs, events and deployment settings (see the SQLite 0001 for
-- the reasons behind each index). Timestamps are fixed-width ISO-8601 UTC text, like SQLite's.

CREATE TABLE orgs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE projects (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE sessions (
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    id          TEXT COLLATE "C" NOT NULL,
    project_id  TEXT COLLATE "C",
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sessions_org_created ON sessions (org_id, created_at, id);

CREATE TABLE runs (
    id                TEXT COLLATE "C" PRIMARY KEY,
    org_id            TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    session_id        TEXT COLLATE "C",
    project_id        TEXT COLLATE "C",
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
    FOREIGN KEY (org_id, session_id) REFERENCES sessions (org_id, id)
);
CREATE INDEX runs_org_id ON runs (org_id, id);
CREATE INDEX runs_org_status ON runs (org_id, status, id);
CREATE INDEX runs_org_session ON runs (org_id, session_id, id);

-- The primary key (run_id, seq) serves both the range read of a run's events and MAX(seq).
CREATE TABLE events (
    run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    org_id  TEXT COLLATE "C" NOT NULL,
    type    TEXT NOT NULL,
    time    TEXT NOT NULL,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- The time expression matches agent_sdk.store._ids.utcnow() (microseconds, Z).
INSERT INTO orgs (id, name, created_at)
VALUES ('default', 'Default',
        to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));

INSERT INTO projects (id, org_id, name, created_at)
VALUES ('default', 'default', 'default',
        to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));

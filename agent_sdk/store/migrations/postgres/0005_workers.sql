-- 0005: the workers of queue mode, for `agent-sdk status` and /ready (see the SQLite 0005).
CREATE TABLE workers (
    name            TEXT COLLATE "C" PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT COLLATE "C" NOT NULL,
    runs_in_flight  INTEGER NOT NULL DEFAULT 0
);

-- 0005: the workers of queue mode, for `agent-sdk status` and /ready.
--
-- One row per worker process, keyed by its name (host:pid unless given one). A worker inserts
-- its row when it starts, rewrites heartbeat_at and runs_in_flight every third of
-- AGENT_SDK_WORKER_LEASE, and deletes the row when it stops cleanly. A process killed with -9
-- leaves its row behind: readers call a worker alive only while its heartbeat is younger than
-- three leases, the same bound recovery uses for a run's heartbeat. Not tenant data: a worker
-- serves every org. Times are fixed-width ISO-8601 UTC text, so they compare as text.
CREATE TABLE workers (
    name            TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL,
    runs_in_flight  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

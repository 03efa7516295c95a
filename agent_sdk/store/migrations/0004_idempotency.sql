-- 0004: Idempotency-Key claims of run creation.
--
-- One row per (org, key): keys are chosen by clients, so the same text in two orgs is two
-- unrelated keys, and the primary key is what settles a race between requests with one key.
-- The run service inserts the claim in the transaction that inserts the run, its run.created
-- event and its audit record, so a claim and its run commit together or not at all.
--
-- request_hash is the SHA-256 of the canonical JSON of the parsed request (agent, input,
-- session_id, metadata, script): the same key with another body is refused, not replayed.
-- state is 'done' when the claim carries its response (the run as first answered, JSON text);
-- 'in_flight' is for a claim committed before its response is known, which the single-transaction
-- design of the SQLite store never writes (see agent_sdk/store/idempotency.py).
--
-- No foreign key to runs: a key outlives nothing it must not (it expires), and retention may
-- delete a run whose key is still remembered; the replay is the stored response, not the run row.
-- expires_at is fixed-width ISO-8601 UTC text like every other timestamp, so it compares as text;
-- its index serves the bounded sweep of expired claims.
CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL,
    run_id        TEXT,
    response      TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

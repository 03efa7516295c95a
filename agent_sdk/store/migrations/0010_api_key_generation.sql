-- 0010: a counter that moves whenever an API key changes in a way authentication must see.
--
-- Servers and workers keep the keys they have verified in memory (core/api_keys.py). Before
-- trusting a remembered key they read this one row: if the number moved since they verified
-- the key, they verify it again against api_keys. One read of one row is much cheaper than
-- reading and checking the key itself, and a revocation committed by any process is seen by the
-- next request in every other process.
--
-- Triggers move it, not the code that writes keys, so no writer can forget (a revoke by hand in
-- SQL counts too) and the counter moves in the same transaction as the change. Only columns that
-- decide whether a key is accepted, and what it may do, count: last_used_at (written by
-- authentication itself) and name do not. A new key needs no bump: nobody remembers it yet.

CREATE TABLE api_key_generation (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  INTEGER NOT NULL
);
INSERT INTO api_key_generation (id, value) VALUES (1, 0);

CREATE TRIGGER api_keys_changed
AFTER UPDATE OF id, org_id, secret_hash, previous_hash, previous_valid_until, role, scopes,
    rate_per_second, burst, ip_allowlist, expires_at, revoked_at ON api_keys
BEGIN
    UPDATE api_key_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
BEGIN
    UPDATE api_key_generation SET value = value + 1 WHERE id = 1;
END;

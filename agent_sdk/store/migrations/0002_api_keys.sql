-- 0002: per-org API keys.
--
-- The table never holds a secret: secret_hash is HMAC-SHA256(pepper, secret) with a pepper kept
-- outside the database, so a copy of this table alone cannot be used to check guesses.
--
-- The key id is the primary key because authentication looks a key up by the id inside the
-- token, before it knows the org: one primary-key seek per request. Ids start with their creation
-- time, so (org_id, id) serves "newest first" listings of one org without a sort. (A Postgres
-- store should declare id with COLLATE "C": ids are mixed-case base62, and only byte order
-- keeps them in time order.)
--
-- previous_hash / previous_valid_until keep the secret replaced by the last rotation working
-- until the grace period ends; both are NULL when there is no grace.
--
-- Limits (rate_per_second, burst, ip_allowlist) are columns of the key, not of a secret, so they
-- survive rotation. NULL limits mean "the deployment's default"; an empty allowlist means any
-- address.
--
-- Timestamps are fixed-width ISO-8601 UTC text like every other table, so expires_at and
-- previous_valid_until compare as text. No CHECK on role: adding a role later would need a
-- table rebuild in SQLite; the key service validates roles and scopes instead.

CREATE TABLE api_keys (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES orgs (id),
    name                  TEXT NOT NULL,
    prefix_display        TEXT NOT NULL,
    last4                 TEXT NOT NULL,
    secret_hash           TEXT NOT NULL,
    previous_hash         TEXT,
    previous_valid_until  TEXT,
    role                  TEXT NOT NULL,
    scopes                TEXT NOT NULL DEFAULT '[]',
    rate_per_second       REAL,
    burst                 INTEGER,
    ip_allowlist          TEXT NOT NULL DEFAULT '[]',
    expires_at            TEXT,
    revoked_at            TEXT,
    created_at            TEXT NOT NULL,
    rotated_at            TEXT,
    last_used_at          TEXT,
    created_by            TEXT NOT NULL
);
CREATE INDEX api_keys_org_id ON api_keys (org_id, id);

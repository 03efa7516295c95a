-- 0002: per-org API keys (see the SQLite 0002: the table never holds a secret, only
-- HMAC-SHA256(pepper, secret)). id is COLLATE "C" so (org_id, id) is in creation-time order.

CREATE TABLE api_keys (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    org_id                TEXT COLLATE "C" NOT NULL REFERENCES orgs (id),
    name                  TEXT NOT NULL,
    prefix_display        TEXT NOT NULL,
    last4                 TEXT NOT NULL,
    secret_hash           TEXT NOT NULL,
    previous_hash         TEXT,
    previous_valid_until  TEXT,
    role                  TEXT NOT NULL,
    scopes                TEXT NOT NULL DEFAULT '[]',
    rate_per_second       DOUBLE PRECISION,
    burst                 INTEGER,
    ip_allowlist          TEXT NOT NULL DEFAULT '[]',
    expires_at            TEXT,
    revoked_at            TEXT,
    created_at            TEXT NOT NULL,
    rotated_at            TEXT,
    last_used_at          TEXT COLLATE "C",
    created_by            TEXT NOT NULL
);
CREATE INDEX api_keys_org_id ON api_keys (org_id, id);

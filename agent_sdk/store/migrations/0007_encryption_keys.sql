-- 0007: the keys of encryption at rest (AGENT_SDK_ENCRYPTION_ENABLED=true).
--
-- Envelope encryption, one row per key generation of an org: `kek` is the org's key-encryption
-- key wrapped (AES-256-GCM) by the master key, which lives outside the database
-- (AGENT_SDK_ENCRYPTION_MASTER_KEY or _FILE); `dek` is the data key wrapped by that KEK. Tenant
-- columns hold `enc:v1:<id>:<base64>` ciphertexts made with the DEK of the generation named by
-- <id>, so a row written under an older generation stays readable after a rotation until the
-- re-encryption job moves it. master_key_id is a fingerprint of the master key that wrapped the
-- KEK (never the key): a server started with another master key says so instead of failing on
-- every read.
--
-- state: 'active' (used for new writes; at most one per org, enforced by the partial unique
-- index, which also settles two processes creating an org's first key at once), 'retired'
-- (rotated out, still decrypts), 'destroyed' (crypto-shredded: both wrapped keys set to NULL, so
-- whatever was encrypted under them can never be read again).
--
-- Timestamps are fixed-width ISO-8601 UTC text like every other table.
CREATE TABLE encryption_keys (
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    id             TEXT NOT NULL,
    state          TEXT NOT NULL,
    master_key_id  TEXT NOT NULL,
    kek            TEXT,
    dek            TEXT,
    created_at     TEXT NOT NULL,
    retired_at     TEXT,
    destroyed_at   TEXT,
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX encryption_keys_active ON encryption_keys (org_id) WHERE state = 'active';
